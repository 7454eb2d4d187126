package ui

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// heatState is the anomaly map of the open image for the selected evaluation job.
type heatState struct {
	job      string
	on       bool
	loading  bool
	err      string
	heat     []uint8 // the map scaled to 0..255 between min and max
	min, max float64
	cmap     string
	lut      [256][3]uint8
	thr      int // 0..255 in heat units
	compare  bool
	opacity  float64
	canvas   app.Value
	cctx     app.Value
}

func (h *heatState) ready() bool { return h != nil && h.heat != nil }

// thrValue converts the threshold to the map's own units for display.
func (h *heatState) thrValue() float64 {
	return h.min + float64(h.thr)/255*(h.max-h.min)
}

// loadJobs fetches the evaluation jobs of the current dataset. A server without jobs (or an older
// one) simply leaves the list empty: heatmaps stay hidden. A running job that another client started
// is followed when this page shows none.
func (s *Studio) loadJobs(ctx app.Context) {
	ds := s.dsID
	s.jobsDS = ds
	ctx.Async(func() {
		var rep protocol.JobsReply
		err := request(protocol.TypeJobsList, nil, &rep)
		ctx.Dispatch(func(ctx app.Context) {
			if s.dsID != ds {
				return
			}
			s.jobs = s.jobs[:0]
			if err != nil {
				return
			}
			for _, j := range rep.Jobs {
				lj := s.liveJobOf(j.ID)
				lj.setInfo(j)
				lj.listed = true
				if j.Dataset == ds && j.State != protocol.JobFailed && j.State != protocol.JobCancelled {
					s.jobs = append(s.jobs, lj.info)
				}
			}
			sort.Slice(s.jobs, func(a, b int) bool { return s.jobs[a].Created > s.jobs[b].Created })
			s.followRunningJob(ctx)
		})
	})
}

// loadScores fetches a snapshot of the selected job (scores, state, result) and merges it with what
// the pushes already brought.
func (s *Studio) loadScores(ctx app.Context) {
	job := s.jobID
	s.scoresJob = job
	ctx.Async(func() {
		var st protocol.JobState
		err := request(protocol.TypeJobGet, protocol.JobRef{Job: job}, &st)
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				if s.jobID == job {
					s.err = fmt.Sprintf("loading scores of job %s: %v", job, err)
				}
				return
			}
			lj := s.liveJobOf(job)
			if err := lj.applyState(st); err != nil {
				s.err = err.Error()
			}
			s.upsertJob(lj.info)
		})
	})
}

// loadHeat fetches the open image's anomaly map (a 16-bit grey PNG with its range in X-Map-Min and
// X-Map-Max) and scales it to the image size. The browser decodes it to 8 bits, which is plenty for
// display and for a threshold slider.
func (s *Studio) loadHeat(ed *editorState) {
	h := ed.heat
	if h == nil || h.loading || h.ready() || h.job == "" {
		return
	}
	h.loading = true
	u := apiURL("/api/heatmap", "job", h.job, "id", ed.image)
	fail := func(msg string) {
		s.mctx.Dispatch(func(app.Context) { h.loading, h.err = false, msg })
	}
	app.Window().Call("fetch", u).Then(func(resp app.Value) {
		if !resp.Get("ok").Bool() {
			fail(fmt.Sprintf("no heatmap for this image (HTTP %d)", resp.Get("status").Int()))
			return
		}
		hdr := resp.Get("headers")
		lo, errLo := strconv.ParseFloat(hdr.Call("get", "X-Map-Min").String(), 64)
		hi, errHi := strconv.ParseFloat(hdr.Call("get", "X-Map-Max").String(), 64)
		if errLo != nil || errHi != nil {
			lo, hi = 0, 1
		}
		resp.Call("blob").Then(func(blob app.Value) {
			app.Window().Call("createImageBitmap", blob).Then(func(bmp app.Value) {
				doc := app.Window().Get("document")
				c := doc.Call("createElement", "canvas")
				c.Set("width", ed.w)
				c.Set("height", ed.h)
				cx := c.Call("getContext", "2d")
				cx.Call("drawImage", bmp, 0, 0, ed.w, ed.h)
				buf := make([]byte, ed.w*ed.h*4)
				app.CopyBytesToGo(buf, cx.Call("getImageData", 0, 0, ed.w, ed.h).Get("data"))
				heat := make([]uint8, ed.w*ed.h)
				for i := range heat {
					heat[i] = buf[i*4]
				}
				s.mctx.Dispatch(func(ctx app.Context) {
					h.loading, h.heat, h.min, h.max = false, heat, lo, hi
					ctx.Defer(func(app.Context) { s.paintHeat(ed) })
				})
			})
		})
	})
}

// paintHeat renders the heat layer after a change of map, threshold, colormap, mode or mask.
func (s *Studio) paintHeat(ed *editorState) {
	h := ed.heat
	if !h.ready() || !h.on || !ed.ready() {
		return
	}
	if h.canvas == nil || !h.canvas.Truthy() || !h.canvas.Get("isConnected").Bool() {
		h.canvas = app.Window().GetElementByID("heat-canvas")
		if !h.canvas.Truthy() {
			return
		}
		h.cctx = h.canvas.Call("getContext", "2d")
	}
	buf := make([]byte, ed.w*ed.h*4)
	heatRGBA(buf, h.heat, ed.ed.Pix, ed.w, ed.h, &h.lut, uint8(h.thr), h.compare)
	img := h.cctx.Call("createImageData", ed.w, ed.h)
	app.CopyBytesToJS(img.Get("data"), buf)
	h.cctx.Call("putImageData", img, 0, 0)
}

// draftFromPrediction replaces the mask with the thresholded prediction, as one undoable edit.
func (s *Studio) draftFromPrediction() {
	ed := s.ed
	if !ed.ready() || !ed.heat.ready() {
		return
	}
	pix := make([]uint8, ed.w*ed.h)
	for i, v := range ed.heat.heat {
		if int(v) >= max(1, ed.heat.thr) {
			pix[i] = uint8(ed.cls)
		}
	}
	r, err := ed.ed.Replace(pix)
	if err != nil {
		s.err = err.Error()
		return
	}
	ed.paint(r)
	s.changed()
}

func (s *Studio) renderHeatControls() app.UI {
	ed := s.ed
	h := ed.heat
	if h == nil {
		return nil
	}
	score, hasScore := s.scores[ed.image]
	return app.Div().Class("group").Body(
		app.H3().Text("Anomaly map"),
		app.If(hasScore, func() app.UI {
			return app.P().Class("row").Body(app.Text("image score "), app.Span().Class("num").Attr("data-testid", "image-score").Text(fmt.Sprintf("%.4f", score)))
		}),
		app.Label().Class("row check").Body(
			app.Input().Type("checkbox").Checked(h.on).Attr("data-testid", "heatmap-toggle").
				OnChange(func(ctx app.Context, e app.Event) {
					h.on = ctx.JSSrc().Get("checked").Bool()
					s.loadHeat(ed)
					ctx.Defer(func(app.Context) { s.paintHeat(ed) })
				}),
			app.Text(" heatmap (o)"),
		),
		app.If(h.err != "", func() app.UI { return app.P().Class("muted").Text(h.err) }),
		app.If(h.loading, func() app.UI { return app.P().Class("muted").Text("loading the map…") }),
		app.Label().Class("row").Body(
			app.Text("Colormap "),
			app.Select().Attr("data-testid", "heatmap-colormap").OnChange(func(ctx app.Context, e app.Event) {
				h.cmap = ctx.JSSrc().Get("value").String()
				h.lut = colormap(h.cmap)
				s.paintHeat(ed)
			}).Body(app.Range(colormapNames).Slice(func(i int) app.UI { return option(colormapNames[i], colormapNames[i], h.cmap) })),
		),
		app.Label().Class("row").Body(
			app.Text("Opacity "),
			app.Input().Type("range").Min(0).Max(100).Value(int(h.opacity*100)).Attr("data-testid", "heatmap-opacity").
				OnInput(func(ctx app.Context, e app.Event) {
					if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil {
						h.opacity = float64(v) / 100
					}
				}),
		),
		app.Label().Class("row").Body(
			app.Text("Threshold "),
			app.Input().Type("range").Min(0).Max(255).Value(h.thr).Attr("data-testid", "threshold-slider").
				OnInput(func(ctx app.Context, e app.Event) {
					if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil {
						h.thr = v
						s.paintHeat(ed)
					}
				}),
			app.Span().Class("num").Attr("data-testid", "threshold-value").Text(fmt.Sprintf("%.3g", h.thrValue())),
		),
		app.Label().Class("row check").Body(
			app.Input().Type("checkbox").Checked(h.compare).Attr("data-testid", "compare-toggle").
				OnChange(func(ctx app.Context, e app.Event) {
					h.compare = ctx.JSSrc().Get("checked").Bool()
					s.paintHeat(ed)
				}),
			app.Text(" compare with the mask (c)"),
		),
		app.If(h.compare, func() app.UI {
			return app.P().Class("legend").Body(
				app.Span().Class("tp").Text("■ true positive "),
				app.Span().Class("fp").Text("■ false positive "),
				app.Span().Class("fn").Text("■ missed"),
			)
		}),
		app.Button().Text("Draft mask from prediction").Attr("data-testid", "draft-from-prediction").Disabled(!h.ready()).
			Title("Replace the mask with the pixels above the threshold (undo with Ctrl+Z)").
			OnClick(func(ctx app.Context, e app.Event) { s.draftFromPrediction() }),
	)
}
