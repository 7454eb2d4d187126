package ui

import (
	"fmt"
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// shortcuts is the help overlay's content; keep it in step with onKeyDown.
var shortcuts = [][2]string{
	{"b / e / p / f", "brush / eraser / polygon / fill"},
	{"[ and ]", "brush size smaller / larger"},
	{"1 … 9", "pick a label class"},
	{"Ctrl+Z", "undo"},
	{"Ctrl+Shift+Z, Ctrl+Y", "redo"},
	{"wheel, + and -", "zoom"},
	{"0 / a", "fit / actual size (1:1)"},
	{"space+drag, middle drag", "pan"},
	{"click … click first point, Enter, double-click", "close the polygon"},
	{"Esc", "cancel the polygon, close this help"},
	{"m / g", "toggle the mask / the ground-truth overlay"},
	{"o / c", "toggle the heatmap / the comparison with the mask (with a model job)"},
	{"→ or j / ← or k", "next / previous image"},
	{"r", "mark reviewed, no defect (again: back to unlabelled)"},
	{"n", "next image that needs work (unlabelled)"},
	{"? or h", "this help"},
}

// Builders for the toolbar's repeated controls. Every go-app builder chain compiles to a long run of
// interface calls, so one call site per kind of control keeps the wasm smaller.

func button(id, label, title string, disabled bool, onClick func(ctx app.Context)) app.UI {
	return app.Button().Attr("data-testid", id).Title("%s", title).Text(label).Disabled(disabled).
		OnClick(func(ctx app.Context, e app.Event) { onClick(ctx) })
}

func checkbox(id, label string, checked bool, set func(bool)) app.HTMLLabel {
	return app.Label().Class("row check").Body(
		app.Input().Type("checkbox").Checked(checked).Attr("data-testid", id).
			OnChange(func(ctx app.Context, e app.Event) { set(ctx.JSSrc().Get("checked").Bool()) }),
		app.Text(" "+label),
	)
}

// slider is a labelled integer range input; extra follows it in the row.
func slider(label, id string, lo, hi, value int, set func(int), extra ...app.UI) app.UI {
	return app.Label().Class("row").Body(
		app.Text(label),
		app.Input().Type("range").Min(lo).Max(hi).Value(value).Attr("data-testid", id).
			OnInput(func(ctx app.Context, e app.Event) {
				if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil && v >= lo && v <= hi {
					set(v)
				}
			}),
		app.Range(extra).Slice(func(i int) app.UI { return extra[i] }),
	)
}

func shown(v bool) string {
	if v {
		return "visible"
	}
	return "hidden"
}

// statusClass is the CSS class of a save status text.
func statusClass(status string) string {
	if status == fatalText {
		return statusFailed
	}
	return status
}

func (s *Studio) renderEditor() app.UI {
	ed := s.ed
	if ed == nil || (ed.ed == nil && ed.status == statusLoading) {
		return app.Div().Class("empty").Text("Loading image…")
	}
	if ed.ed == nil {
		return app.Div().Class("empty").Text("This image could not be opened: " + ed.saveErr)
	}
	info := s.imageInfo(ed.image)
	hasGT := info != nil && info.MaskID != ""
	gtURL := "none"
	if hasGT {
		// An outline, so that the editable mask under it stays readable.
		gtURL = fmt.Sprintf("url(%q)", apiURL("/api/gt", "dataset", ed.dataset, "id", ed.image, "outline", "1"))
	}
	tool := func(id, label, key string) app.UI {
		return app.Button().Class("tool").Class(map[bool]string{true: "active"}[ed.tool == id]).
			Attr("data-testid", "tool-"+id).Title("%s (%s)", label, key).Text(label).
			OnClick(func(ctx app.Context, e app.Event) {
				ed.tool = id
				if id != toolPolygon {
					ed.poly = nil
					ed.drawPreview()
				}
			})
	}
	statusText := ed.status
	if s.fatal != "" {
		statusText = fatalText
	}
	return app.Section().Class("editor-view").Body(
		app.Aside().Class("toolbar").Body(
			// Save state and navigation head the toolbar and stay in view while it scrolls: on a
			// 1280x720 screen the rest of the toolbar does not fit.
			app.Div().Class("group head").Body(
				app.P().Class("row").Body(
					app.Span().Class("save-status "+statusClass(statusText)).Attr("data-testid", "save-status").
						Attr("data-version", ed.version).Title("%s", ed.saveErr).Text(statusText),
					app.Span().Class("muted").Attr("data-testid", "mask-source").Title(sourceHint(ed.source)).Text(sourceText(ed.version, ed.source)),
				),
				app.Div().Class("tools nav").Body(
					button("prev-image", "← Prev", "Previous image (← or k)", s.neighbour(-1) == "", func(ctx app.Context) { s.goNeighbour(ctx, -1) }),
					button("next-image", "Next →", "Next image (→ or j)", s.neighbour(1) == "", func(ctx app.Context) { s.goNeighbour(ctx, 1) }),
					button("help", "?", "Keyboard shortcuts", false, func(app.Context) { ed.help = !ed.help }),
				),
				app.P().Class("error-text").Hidden(ed.status != statusFailed || ed.saveErr == "").Text(ed.saveErr),
			),
			// Not in the sticky head: a taller head would cover the controls scrolled up under it.
			s.renderReviewBar(ed),
			app.Div().Class("group").Body(
				app.H3().Text("Tools"),
				app.Div().Class("tools").Body(
					tool(toolBrush, "Brush", "b"),
					tool(toolEraser, "Eraser", "e"),
					tool(toolPolygon, "Polygon", "p"),
					tool(toolFill, "Fill", "f"),
				),
				slider("Size ", "brush-size", 1, 256, ed.size, func(v int) { ed.size = v },
					app.Span().Class("num").Attr("data-testid", "brush-size-value").Text(ed.size)),
				checkbox("polygon-subtract", "polygon subtracts", ed.polySubtract, func(v bool) { ed.polySubtract = v }),
				app.P().Class("error-text").Attr("data-testid", "tool-message").Hidden(ed.toolMsg == "").Text(ed.toolMsg),
				app.Div().Class("tools").Body(
					button("undo", "Undo", "Undo (Ctrl+Z)", !ed.ed.CanUndo(), func(app.Context) { s.undo() }),
					button("redo", "Redo", "Redo (Ctrl+Shift+Z)", !ed.ed.CanRedo(), func(app.Context) { s.redo() }),
					button("clear", "Clear", "Clear the whole mask", false, func(app.Context) {
						if r := ed.ed.Clear(); !r.Empty() {
							ed.paint(r)
							s.changed()
						}
					}),
				),
			),
			s.renderSmartTools(),
			app.Div().Class("group").Body(
				app.H3().Text("Label class"),
				app.Select().Attr("data-testid", "class-select").OnChange(func(ctx app.Context, e app.Event) {
					if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil {
						ed.cls = v
					}
				}).Body(
					app.Range(ed.classes).Slice(func(i int) app.UI {
						c := ed.classes[i]
						label := c.Name
						if i < 9 {
							label = fmt.Sprintf("%d · %s", i+1, c.Name)
						}
						return app.Option().Value(c.Index).Selected(c.Index == ed.cls).Text(label)
					}),
					app.If(len(ed.classes) == 0, func() app.UI {
						return app.Option().Value(1).Selected(true).Text("defect (created on first save)")
					}),
				),
				app.Span().Class("swatch").Style("background", "rgb(%d,%d,%d)", ed.palette[ed.cls][0], ed.palette[ed.cls][1], ed.palette[ed.cls][2]),
				app.Div().Class("row").Body(
					app.Input().Type("text").ID("class-name").Placeholder("new class").Value(ed.newClassName).Attr("data-testid", "class-name").
						OnInput(func(ctx app.Context, e app.Event) { ed.newClassName = ctx.JSSrc().Get("value").String() }),
					app.Input().Type("color").Value(ed.newClassCol).Attr("data-testid", "class-color").
						OnInput(func(ctx app.Context, e app.Event) { ed.newClassCol = ctx.JSSrc().Get("value").String() }),
					button("class-add", "Add", "", false, s.createClass),
				),
				s.renderLegend(ed),
				app.P().Class("error-text").Attr("data-testid", "class-error").Hidden(ed.classErr == "").Text(ed.classErr),
			),
			s.renderDisplayControls(ed),
			app.Div().Class("group").Body(
				app.H3().Text("View"),
				app.Div().Class("tools").Body(
					button("zoom-fit", "Fit", "Fit (0)", false, func(app.Context) { ed.fit() }),
					button("zoom-1", "1:1", "Actual size (a)", false, func(app.Context) { ed.actualSize() }),
					button("zoom-in", "+", "Zoom in (+)", false, func(app.Context) { ed.zoomCenter(1.25) }),
					button("zoom-out", "−", "Zoom out (-)", false, func(app.Context) { ed.zoomCenter(0.8) }),
					app.Span().ID("zoom-label").Class("num").Text(fmt.Sprintf("%.0f%%", ed.zoom*100)),
				),
				slider("Mask opacity ", "mask-opacity", 0, 100, int(ed.opacity*100), func(v int) { ed.opacity = float64(v) / 100 }),
				checkbox("mask-toggle", "mask (m)", ed.showMask, func(v bool) { ed.showMask = v }),
				checkbox("gt-toggle", "dataset ground truth (g)", ed.showGT, func(v bool) { ed.showGT = v }).Hidden(!hasGT),
			),
			s.renderHeatControls(),
			app.Div().Class("group").Body(
				app.H3().Text("Mask"),
				app.Div().Class("tools").Body(
					button("history", "History", "", false, func(ctx app.Context) {
						ed.showHistory = !ed.showHistory
						if ed.showHistory {
							s.loadHistory(ctx)
						}
					}),
					exportLink(ed.dataset, "Export"),
				),
				app.If(ed.showHistory, func() app.UI {
					// One entry per sitting (autosave stores every stroke); its versions unfold on demand.
					groups := groupHistory(ed.history)
					now := time.Now()
					revert := func(v protocol.MaskVersion, label string) app.UI {
						if v.Version == ed.version {
							return app.Span().Class("muted").Text(" (shown)")
						}
						return app.Button().Class("link").Attr("data-testid", "history-revert").Attr("data-version", v.Version).Text(label).
							OnClick(func(ctx app.Context, e app.Event) { s.revert(ctx, v.Version) })
					}
					return app.Ol().Class("history").Attr("data-testid", "history-list").Body(
						app.Range(groups).Slice(func(i int) app.UI {
							g := groups[i]
							head := []app.UI{app.Span().Attr("data-testid", "history-group").Text(g.label(now)), revert(g.last(), "revert")}
							if len(g.Versions) == 1 {
								return app.Li().Body(head...)
							}
							return app.Li().Body(app.Details().Body(
								app.Summary().Body(head...),
								app.Ul().Body(app.Range(g.Versions).Slice(func(j int) app.UI {
									v := g.Versions[j]
									return app.Li().Body(app.Span().Text(fmt.Sprintf("v%d · %d px", v.Version, v.Pixels)), revert(v, "revert"))
								})),
							))
						}),
					)
				}),
			),
		),
		app.Div().ID("viewport").Class("viewport").Body(
			// Every layer is always rendered, in a fixed order, and hidden with CSS: go-app reuses elements
			// by position, so a layer that came and went would hand its canvas (and its pixels, opacity
			// and toggle) to the next one.
			app.Div().ID("stage").Class("stage").Style("width", "%dpx", ed.w).Style("height", "%dpx", ed.h).Body(
				app.Img().ID("editor-image").Class("layer").Alt(ed.image).Attr("draggable", "false").
					Style("filter", "%s", s.prefsOf(ed.dataset).imageFilter()).
					Src(apiURL("/api/image", "dataset", ed.dataset, "id", ed.image)),
				s.renderHeatLayer(),
				app.Div().Class("layer gt-overlay").Attr("data-testid", "gt-overlay").
					Style("mask-image", "%s", gtURL).Style("-webkit-mask-image", "%s", gtURL).
					Style("visibility", "%s", shown(hasGT && ed.showGT)),
				app.Canvas().ID("mask-canvas").Class("layer mask").Attr("data-testid", "editor-canvas").
					Width(ed.w).Height(ed.h).Style("opacity", "%.2f", ed.opacity).
					Style("visibility", "%s", shown(ed.showMask)),
				app.Canvas().ID("preview-canvas").Class("layer preview").Width(ed.w).Height(ed.h),
			),
		),
		app.If(ed.help, func() app.UI {
			return app.Div().Class("help-overlay").Attr("data-testid", "help-overlay").
				OnClick(func(ctx app.Context, e app.Event) { ed.help = false }).Body(
				app.Div().Class("help-card").Body(
					app.H2().Text("Keyboard shortcuts"),
					app.Table().Body(
						app.Range(shortcuts).Slice(func(i int) app.UI {
							return app.Tr().Body(app.Td().Body(app.Kbd().Text(shortcuts[i][0])), app.Td().Text(shortcuts[i][1]))
						}),
					),
				),
			)
		}),
	)
}

// sourceText says where the mask in the editor comes from, in words a newcomer reads right (the tooltip
// says more): the dataset's own ground truth is shown to start from, but it is not the user's work until
// saved here. It stays short: the toolbar's sticky head must not grow over the controls below it.
func sourceText(version int, source string) string {
	switch source {
	case "dataset":
		return " dataset's mask"
	case "none":
		return " empty"
	}
	return fmt.Sprintf(" v%d saved", version)
}

func sourceHint(source string) string {
	switch source {
	case "dataset":
		return "The mask the dataset came with. The first edit saves it, with your change, as version 1 in this workspace."
	case "none":
		return "Nothing is labelled on this image yet."
	}
	return "Your mask, saved in this workspace; History lists every version."
}
