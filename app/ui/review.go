package ui

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// The labelling day: review states per image, class management and image display settings.

// dsPrefs are one dataset's view settings, kept in the browser session (sessionStorage): they survive
// moving between images and reloads, never reach the server, and never change a mask or model input.
type dsPrefs struct {
	Bright   int   `json:"b"` // percent, 100 = unchanged
	Contrast int   `json:"c"` // percent
	Gamma    int   `json:"g"` // gamma x 100: 100 = 1.0; above 100 brightens the dark tones
	Hidden   []int `json:"h,omitempty"`
	Locked   []int `json:"l,omitempty"`
}

func defaultPrefs() *dsPrefs { return &dsPrefs{Bright: 100, Contrast: 100, Gamma: 100} }

func (p *dsPrefs) has(list []int, idx int) bool {
	for _, v := range list {
		if v == idx {
			return true
		}
	}
	return false
}

func toggle(list []int, idx int, on bool) []int {
	out := list[:0:0]
	for _, v := range list {
		if v != idx {
			out = append(out, v)
		}
	}
	if on {
		out = append(out, idx)
	}
	return out
}

func (s *Studio) prefsOf(ds string) *dsPrefs {
	if p, ok := s.prefs[ds]; ok {
		return p
	}
	if s.prefs == nil {
		s.prefs = map[string]*dsPrefs{}
	}
	p := defaultPrefs()
	if st := app.Window().Get("sessionStorage"); st.Truthy() {
		if v := st.Call("getItem", "rdre.view."+ds); v.Truthy() {
			if err := json.Unmarshal([]byte(v.String()), p); err != nil || p.Bright <= 0 || p.Contrast <= 0 || p.Gamma <= 0 {
				p = defaultPrefs()
			}
		}
	}
	s.prefs[ds] = p
	return p
}

func (s *Studio) savePrefs(ds string) {
	raw, err := json.Marshal(s.prefsOf(ds))
	if st := app.Window().Get("sessionStorage"); err == nil && st.Truthy() {
		st.Call("setItem", "rdre.view."+ds, string(raw))
	}
}

// applyClassView pushes the dataset's hidden and locked classes into the open editor and repaints.
func (s *Studio) applyClassView(ed *editorState) {
	if !ed.ready() {
		return
	}
	p := s.prefsOf(ed.dataset)
	for i := range ed.ed.Locked {
		ed.ed.Locked[i] = i > 0 && p.has(p.Locked, i)
	}
	ed.hidden = p.Hidden
	ed.setPalette()
	ed.paint(Rect{0, 0, ed.w, ed.h})
}

// imageFilter is the CSS filter of the editor image. Gamma goes through the SVG filter below it.
func (p *dsPrefs) imageFilter() string {
	if p.Bright == 100 && p.Contrast == 100 && p.Gamma == 100 {
		return "none"
	}
	return fmt.Sprintf("url(#rdre-gamma) brightness(%.2f) contrast(%.2f)", float64(p.Bright)/100, float64(p.Contrast)/100)
}

// setGamma writes the gamma exponent into the SVG filter, creating the filter on first use.
func setGamma(p *dsPrefs) {
	doc := app.Window().Get("document")
	if !app.Window().GetElementByID("rdre-gamma").Truthy() {
		// Built outside go-app's tree, once per page: go-app rebuilds raw markup on every render.
		holder := doc.Call("createElement", "div")
		holder.Set("innerHTML", gammaFilterSVG)
		doc.Get("body").Call("appendChild", holder.Get("firstChild"))
	}
	exp := fmt.Sprintf("%.3f", 100/float64(p.Gamma))
	for _, c := range []string{"r", "g", "b"} {
		if f := app.Window().GetElementByID("rdre-gamma-" + c); f.Truthy() {
			f.Call("setAttribute", "exponent", exp)
		}
	}
}

const gammaFilterSVG = `<svg class="svg-defs" width="0" height="0" aria-hidden="true"><filter id="rdre-gamma" color-interpolation-filters="sRGB"><feComponentTransfer>` +
	`<feFuncR id="rdre-gamma-r" type="gamma" amplitude="1" exponent="1" offset="0"></feFuncR>` +
	`<feFuncG id="rdre-gamma-g" type="gamma" amplitude="1" exponent="1" offset="0"></feFuncG>` +
	`<feFuncB id="rdre-gamma-b" type="gamma" amplitude="1" exponent="1" offset="0"></feFuncB>` +
	`</feComponentTransfer></filter></svg>`

func (s *Studio) renderDisplayControls(ed *editorState) app.UI {
	p := s.prefsOf(ed.dataset)
	set := func(f *int) func(int) {
		return func(v int) {
			*f = v
			s.savePrefs(ed.dataset)
			setGamma(p)
		}
	}
	return app.Div().Class("group").Body(
		app.H3().Text("Image display"),
		slider("Brightness ", "img-brightness", 20, 300, p.Bright, set(&p.Bright), app.Span().Class("num").Text(fmt.Sprintf("%d%%", p.Bright))),
		slider("Contrast ", "img-contrast", 20, 300, p.Contrast, set(&p.Contrast), app.Span().Class("num").Text(fmt.Sprintf("%d%%", p.Contrast))),
		slider("Gamma ", "img-gamma", 20, 300, p.Gamma, set(&p.Gamma), app.Span().Class("num").Text(fmt.Sprintf("%.2f", float64(p.Gamma)/100))),
		button("img-reset", "Reset", "Back to the image as stored", false, func(app.Context) {
			p.Bright, p.Contrast, p.Gamma = 100, 100, 100
			s.savePrefs(ed.dataset)
			setGamma(p)
		}),
		app.P().Class("muted small").Text("Display only: masks and model input are unchanged."),
	)
}

// ---- review states ----

// loadReviews fetches the dataset's review states.
func (s *Studio) loadReviews(ctx app.Context, ds string) {
	s.reviewsDS = ds
	ctx.Async(func() {
		var rep protocol.ReviewsReply
		err := request(protocol.TypeReviewsList, protocol.ReviewsListRequest{Dataset: ds}, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				s.reviewsDS = ""
				s.err = fmt.Sprintf("loading review states of %s: %v", ds, err)
				return
			}
			if s.reviewsDS != ds {
				return
			}
			s.reviews = map[string]string{}
			for _, r := range rep.Reviews {
				s.reviews[r.Image] = r.State
			}
		})
	})
}

func (s *Studio) loadReviewSummary(ctx app.Context) {
	ctx.Async(func() {
		var rep protocol.ReviewSummaryReply
		err := request(protocol.TypeReviewSummary, nil, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				s.err = fmt.Sprintf("loading review counts: %v", err)
				return
			}
			s.dsCounts = map[string]protocol.ReviewCounts{}
			for _, c := range rep.Datasets {
				s.dsCounts[c.Dataset] = c
			}
		})
	})
}

// reviewOf is an image's state; unknown images and images without a record are unlabelled.
func (s *Studio) reviewOf(img string) string {
	if st, ok := s.reviews[img]; ok && s.reviewsDS == s.dsID {
		return st
	}
	return protocol.ReviewUnlabelled
}

func (s *Studio) setLocalReview(ds, img, state string) {
	if ds != s.reviewsDS || s.reviews == nil {
		return
	}
	if state == protocol.ReviewUnlabelled {
		delete(s.reviews, img)
	} else {
		s.reviews[img] = state
	}
	if c, ok := s.dsCounts[ds]; ok {
		// The cards' counts are refreshed from the server when the list is shown again.
		delete(s.dsCounts, c.Dataset)
	}
}

// afterOwnSave applies the review rule to this tab's own mask save or revert: the server pushes the
// derived state to the other tabs only.
func (s *Studio) afterOwnSave(ds, img string, empty bool) {
	if ds == s.reviewsDS {
		s.setLocalReview(ds, img, protocol.NextReviewState(s.reviewOf(img), !empty))
	}
}

// reviewCounts counts the loaded images of the current dataset by state.
func (s *Studio) reviewCounts() protocol.ReviewCounts {
	c := protocol.ReviewCounts{Dataset: s.dsID}
	if s.imgDSID != s.dsID {
		return c
	}
	c.Images = len(s.images)
	for _, im := range s.images {
		switch s.reviewOf(im.ID) {
		case protocol.ReviewLabelled:
			c.Labelled++
		case protocol.ReviewNoDefect:
			c.NoDefect++
		}
	}
	c.Unlabelled = c.Images - c.Labelled - c.NoDefect
	return c
}

func countsText(c protocol.ReviewCounts) string {
	return fmt.Sprintf("%d of %d labelled · %d reviewed, no defect · %d to do", c.Labelled, c.Images, c.NoDefect, c.Unlabelled)
}

func reviewLabel(state string) string {
	switch state {
	case protocol.ReviewLabelled:
		return "labelled"
	case protocol.ReviewNoDefect:
		return "reviewed, no defect"
	}
	return "unlabelled"
}

// toggleNoDefect marks the open image reviewed-no-defect, or back to unlabelled when it is. Its
// errors show in the editor's review line: nothing else on the page changes.
func (s *Studio) toggleNoDefect(ctx app.Context) {
	ed := s.ed
	if !ed.ready() {
		return
	}
	cur := s.reviewOf(ed.image)
	next := protocol.ReviewNoDefect
	if cur == protocol.ReviewNoDefect {
		next = protocol.ReviewUnlabelled
	}
	if next == protocol.ReviewNoDefect && ed.ed.Count() > 0 {
		ed.reviewErr = "this mask has defect pixels: clear it to mark the image reviewed, no defect"
		return
	}
	ed.reviewErr = ""
	req := protocol.ReviewSetRequest{Dataset: ed.dataset, Image: ed.image, State: next}
	ctx.Async(func() {
		var rep protocol.Review
		err := request(protocol.TypeReviewSet, req, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				ed.reviewErr = fmt.Sprintf("marking %s %s: %v", req.Image, reviewLabel(next), err)
				return
			}
			s.setLocalReview(rep.Dataset, rep.Image, rep.State)
		})
	})
}

// nextToDo is the next unlabelled image after the open one in the grid's order (its split, kind and
// "mine" filters, not its review filter, which may be hiding exactly those images), wrapping around.
func (s *Studio) nextToDo() string {
	imgs := s.filteredBy(false)
	start := -1
	for i, im := range imgs {
		if im.ID == s.imgID {
			start = i
			break
		}
	}
	for k := 1; k <= len(imgs); k++ {
		im := imgs[(start+k+len(imgs))%len(imgs)]
		if im.ID != s.imgID && s.reviewOf(im.ID) == protocol.ReviewUnlabelled {
			return im.ID
		}
	}
	return ""
}

func (s *Studio) goNextToDo(ctx app.Context) {
	if id := s.nextToDo(); id != "" {
		ctx.Navigate(s.imageURL(id))
		return
	}
	if s.ed != nil {
		s.ed.reviewErr = "nothing left to do: every image in this view is labelled or reviewed"
	}
}

// renderReviewBar is the editor's review line: the state, the dataset's counts, the two actions.
func (s *Studio) renderReviewBar(ed *editorState) app.UI {
	st := s.reviewOf(ed.image)
	return app.Div().Class("group review-bar").Body(
		app.P().Class("row").Body(
			app.Span().Class("badge review-"+st).Attr("data-testid", "review-state").Attr("data-state", st).Text(reviewLabel(st)),
			app.Span().Class("muted small").Attr("data-testid", "review-count").Text(" "+countsText(s.reviewCounts())),
		),
		app.Div().Class("tools").Body(
			button("review-nodefect", map[bool]string{true: "Undo no defect", false: "No defect ✓"}[st == protocol.ReviewNoDefect],
				"Mark reviewed, no defect: a good image someone checked (r)", false, s.toggleNoDefect),
			button("next-todo", "Next to do ⇥", "Next image that needs work (n)", false, s.goNextToDo),
		),
		app.P().Class("error-text").Attr("data-testid", "review-error").Hidden(ed.reviewErr == "").Text(ed.reviewErr),
	)
}

// withReview returns the grid URL u with its review filter set to state ("" for all).
func withReview(u, state string) string {
	i := strings.IndexByte(u, '?')
	q, _ := url.ParseQuery(u[i+1:])
	if state == "" {
		q.Del("review")
	} else {
		q.Set("review", state)
	}
	return u[:i] + "?" + q.Encode()
}

func (s *Studio) renderReviewFilter() app.UI {
	return app.Label().Body(
		app.Text("Review "),
		app.Select().Attr("data-testid", "filter-review").OnChange(func(ctx app.Context, e app.Event) {
			ctx.Navigate(withReview(s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine), selectValue(ctx)))
		}).Body(
			option("", "all", s.fReview),
			option(protocol.ReviewUnlabelled, "unlabelled (to do)", s.fReview),
			option(protocol.ReviewLabelled, "labelled", s.fReview),
			option(protocol.ReviewNoDefect, "reviewed, no defect", s.fReview),
		),
	)
}

// ---- class management ----

func (s *Studio) renderLegend(ed *editorState) app.UI {
	p := s.prefsOf(ed.dataset)
	return app.Ul().Class("legend").Attr("data-testid", "class-legend").Body(
		app.Range(ed.classes).Slice(func(i int) app.UI {
			c := ed.classes[i]
			idx := c.Index
			hidden, locked := p.has(p.Hidden, idx), p.has(p.Locked, idx)
			tid := func(what string) string { return fmt.Sprintf("class-%s-%d", what, idx) }
			name := app.UI(app.Button().Class("link legend-name").Class(map[bool]string{true: "active"}[idx == ed.cls]).
				Attr("data-testid", tid("name")).Title("Draw with this class").Text(c.Name).
				OnClick(func(ctx app.Context, e app.Event) { ed.cls = idx }))
			if ed.renaming == idx {
				name = app.Input().Type("text").ID("class-rename").Value(ed.renameText).Attr("data-testid", "class-rename-input").
					OnInput(func(ctx app.Context, e app.Event) { ed.renameText = ctx.JSSrc().Get("value").String() })
			}
			return app.Li().Class("legend-row").Attr("data-testid", "legend-row").Attr("data-index", idx).Body(
				app.Input().Type("color").Value(c.Color).Attr("data-testid", tid("color")).Title("Colour").
					OnChange(func(ctx app.Context, e app.Event) {
						s.updateClass(ctx, idx, "", ctx.JSSrc().Get("value").String())
					}),
				name,
				app.If(ed.renaming == idx, func() app.UI {
					return app.Span().Body(
						button("class-rename-save", "Save", "Rename the class", false, func(ctx app.Context) { s.updateClass(ctx, idx, ed.renameText, "") }),
						button("class-rename-cancel", "Cancel", "", false, func(app.Context) { ed.renaming, ed.classErr = 0, "" }),
					)
				}).Else(func() app.UI {
					return button(tid("rename"), "✎", "Rename", false, func(app.Context) { ed.renaming, ed.renameText, ed.confirmDelete = idx, c.Name, 0 })
				}),
				checkbox(tid("hide"), "hide", hidden, func(v bool) {
					p.Hidden = toggle(p.Hidden, idx, v)
					s.savePrefs(ed.dataset)
					s.applyClassView(ed)
				}),
				checkbox(tid("lock"), "lock", locked, func(v bool) {
					p.Locked = toggle(p.Locked, idx, v)
					s.savePrefs(ed.dataset)
					s.applyClassView(ed)
				}),
				app.If(c.Source != "dataset", func() app.UI {
					return button(tid("delete"), "✕", "Delete this class", false, func(app.Context) { ed.confirmDelete, ed.renaming = idx, 0 })
				}),
				app.If(ed.confirmDelete == idx, func() app.UI {
					return app.Div().Class("confirm").Attr("data-testid", "class-delete-confirm").Body(
						app.P().Text(fmt.Sprintf("Delete class %q? Its pixels become background: every image whose saved mask has them gets a new version without them (the history keeps the old versions, but a revert does not bring the class back). This cannot be undone.", c.Name)),
						button("class-delete-yes", "Delete", "", false, func(ctx app.Context) { s.deleteClass(ctx, idx) }),
						button("class-delete-no", "Keep", "", false, func(app.Context) { ed.confirmDelete = 0 }),
					)
				}),
			)
		}),
	)
}

func (s *Studio) updateClass(ctx app.Context, idx int, name, color string) {
	ed := s.ed
	name = strings.TrimSpace(name)
	if color == "" {
		if name == "" {
			ed.classErr = "a class needs a name"
			return
		}
		for _, c := range ed.classes {
			if c.Index != idx && strings.EqualFold(c.Name, name) {
				ed.classErr = fmt.Sprintf("a class named %q exists", c.Name)
				return
			}
		}
	}
	ed.classErr = ""
	req := protocol.ClassUpdateRequest{Dataset: ed.dataset, Index: idx, Name: name, Color: color}
	ctx.Async(func() {
		var rep protocol.ClassesReply
		err := request(protocol.TypeClassUpdate, req, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				ed.classErr = fmt.Sprintf("changing class %d: %v", idx, err)
				return
			}
			ed.renaming = 0
			s.setClasses(ed, rep.Classes)
		})
	})
}

func (s *Studio) deleteClass(ctx app.Context, idx int) {
	ed := s.ed
	ed.confirmDelete, ed.classErr = 0, ""
	req := protocol.ClassDeleteRequest{Dataset: ed.dataset, Index: idx}
	ctx.Async(func() {
		var rep protocol.ClassDeletedReply
		err := request(protocol.TypeClassDelete, req, &rep)
		// Through the page's context: the "yes" button that started this is gone by now, and go-app
		// drops a dispatch whose source element is no longer mounted (the reply would be lost).
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				ed.classErr = fmt.Sprintf("deleting class %d: %v", idx, err)
				return
			}
			s.setClasses(ed, rep.Classes)
			if ed.ready() {
				ed.dropUnknownClasses()
			}
			for _, m := range rep.Masks {
				s.markAnnotated(m.Dataset, m.Image, !m.Empty)
				if s.ed == ed && m.Image == ed.image {
					s.reloadMask(ctx, ed, 0)
				}
			}
			// The rewritten masks changed review states on the server.
			s.loadReviews(ctx, ed.dataset)
		})
	})
}

// setClasses installs a new class list in the editor (a reply or another tab's push) and repaints.
func (s *Studio) setClasses(ed *editorState, classes []protocol.LabelClass) {
	ed.classes = classes
	found := false
	for _, c := range classes {
		found = found || c.Index == ed.cls
	}
	if !found && len(classes) > 0 {
		ed.cls = classes[0].Index
	}
	s.applyClassView(ed)
}
