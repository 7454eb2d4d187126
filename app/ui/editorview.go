package ui

import (
	"fmt"
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
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
	{"? or h", "this help"},
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
	return app.Section().Class("editor-view").Body(
		app.Aside().Class("toolbar").Body(
			app.Div().Class("group").Body(
				app.H3().Text("Tools"),
				app.Div().Class("tools").Body(
					tool(toolBrush, "Brush", "b"),
					tool(toolEraser, "Eraser", "e"),
					tool(toolPolygon, "Polygon", "p"),
					tool(toolFill, "Fill", "f"),
				),
				app.Label().Class("row").Body(
					app.Text("Size "),
					app.Input().Type("range").Min(1).Max(256).Value(ed.size).Attr("data-testid", "brush-size").
						OnInput(func(ctx app.Context, e app.Event) {
							if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil && v > 0 {
								ed.size = v
							}
						}),
					app.Span().Class("num").Attr("data-testid", "brush-size-value").Text(ed.size),
				),
				app.Label().Class("row check").Body(
					app.Input().Type("checkbox").Checked(ed.polySubtract).Attr("data-testid", "polygon-subtract").
						OnChange(func(ctx app.Context, e app.Event) { ed.polySubtract = ctx.JSSrc().Get("checked").Bool() }),
					app.Text(" polygon subtracts"),
				),
				app.Div().Class("tools").Body(
					app.Button().Attr("data-testid", "undo").Title("Undo (Ctrl+Z)").Text("Undo").Disabled(!ed.ed.CanUndo()).
						OnClick(func(ctx app.Context, e app.Event) { s.undo() }),
					app.Button().Attr("data-testid", "redo").Title("Redo (Ctrl+Shift+Z)").Text("Redo").Disabled(!ed.ed.CanRedo()).
						OnClick(func(ctx app.Context, e app.Event) { s.redo() }),
					app.Button().Attr("data-testid", "clear").Title("Clear the whole mask").Text("Clear").
						OnClick(func(ctx app.Context, e app.Event) {
							if r := ed.ed.Clear(); !r.Empty() {
								ed.paint(r)
								s.changed()
							}
						}),
				),
			),
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
					app.Input().Type("text").Placeholder("new class").Value(ed.newClassName).Attr("data-testid", "class-name").
						OnInput(func(ctx app.Context, e app.Event) { ed.newClassName = ctx.JSSrc().Get("value").String() }),
					app.Input().Type("color").Value(ed.newClassCol).Attr("data-testid", "class-color").
						OnInput(func(ctx app.Context, e app.Event) { ed.newClassCol = ctx.JSSrc().Get("value").String() }),
					app.Button().Text("Add").Attr("data-testid", "class-add").OnClick(func(ctx app.Context, e app.Event) { s.createClass(ctx) }),
				),
			),
			app.Div().Class("group").Body(
				app.H3().Text("View"),
				app.Div().Class("tools").Body(
					app.Button().Text("Fit").Attr("data-testid", "zoom-fit").OnClick(func(ctx app.Context, e app.Event) { ed.fit() }),
					app.Button().Text("1:1").Attr("data-testid", "zoom-1").OnClick(func(ctx app.Context, e app.Event) { ed.actualSize() }),
					app.Button().Text("+").Attr("data-testid", "zoom-in").OnClick(func(ctx app.Context, e app.Event) { ed.zoomCenter(1.25) }),
					app.Button().Text("−").Attr("data-testid", "zoom-out").OnClick(func(ctx app.Context, e app.Event) { ed.zoomCenter(0.8) }),
					app.Span().ID("zoom-label").Class("num").Text(fmt.Sprintf("%.0f%%", ed.zoom*100)),
				),
				app.Label().Class("row").Body(
					app.Text("Mask opacity "),
					app.Input().Type("range").Min(0).Max(100).Value(int(ed.opacity*100)).Attr("data-testid", "mask-opacity").
						OnInput(func(ctx app.Context, e app.Event) {
							if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil {
								ed.opacity = float64(v) / 100
							}
						}),
				),
				app.Label().Class("row check").Body(
					app.Input().Type("checkbox").Checked(ed.showMask).Attr("data-testid", "mask-toggle").
						OnChange(func(ctx app.Context, e app.Event) { ed.showMask = ctx.JSSrc().Get("checked").Bool() }),
					app.Text(" mask (m)"),
				),
				app.If(hasGT, func() app.UI {
					return app.Label().Class("row check").Body(
						app.Input().Type("checkbox").Checked(ed.showGT).Attr("data-testid", "gt-toggle").
							OnChange(func(ctx app.Context, e app.Event) { ed.showGT = ctx.JSSrc().Get("checked").Bool() }),
						app.Text(" dataset ground truth (g)"),
					)
				}),
			),
			s.renderHeatControls(),
			app.Div().Class("group").Body(
				app.H3().Text("Mask"),
				app.P().Class("row").Body(
					app.Span().Class("save-status "+statusText).Attr("data-testid", "save-status").
						Attr("data-version", ed.version).Title("%s", ed.saveErr).Text(statusText),
					app.Span().Class("muted").Text(fmt.Sprintf(" v%d · %s", ed.version, ed.source)),
				),
				app.If(ed.status == statusFailed && ed.saveErr != "", func() app.UI {
					return app.P().Class("error-text").Text(ed.saveErr)
				}),
				app.Div().Class("tools").Body(
					app.Button().Text("History").Attr("data-testid", "history").OnClick(func(ctx app.Context, e app.Event) {
						ed.showHistory = !ed.showHistory
						if ed.showHistory {
							s.loadHistory(ctx)
						}
					}),
					app.A().Class("button").Attr("data-testid", "export-masks").
						Href(apiURL("/api/export", "dataset", ed.dataset)).Attr("download", "").Text("Export"),
				),
				app.If(ed.showHistory, func() app.UI {
					return app.Ol().Class("history").Attr("data-testid", "history-list").Body(
						app.Range(ed.history).Slice(func(i int) app.UI {
							v := ed.history[len(ed.history)-1-i]
							return app.Li().Body(
								app.Span().Text(fmt.Sprintf("v%d · %d px · %s", v.Version, v.Pixels, v.SavedAt)),
								app.If(v.Version != ed.version, func() app.UI {
									return app.Button().Class("link").Text("revert").OnClick(func(ctx app.Context, e app.Event) { s.revert(ctx, v.Version) })
								}),
							)
						}),
					)
				}),
			),
			app.Div().Class("group nav").Body(
				app.Button().Text("← Previous").Attr("data-testid", "prev-image").Disabled(s.neighbour(-1) == "").
					OnClick(func(ctx app.Context, e app.Event) { s.goNeighbour(ctx, -1) }),
				app.Button().Text("Next →").Attr("data-testid", "next-image").Disabled(s.neighbour(1) == "").
					OnClick(func(ctx app.Context, e app.Event) { s.goNeighbour(ctx, 1) }),
				app.Button().Text("?").Title("Keyboard shortcuts").Attr("data-testid", "help").
					OnClick(func(ctx app.Context, e app.Event) { ed.help = !ed.help }),
			),
		),
		app.Div().ID("viewport").Class("viewport").Body(
			app.Div().ID("stage").Class("stage").Style("width", "%dpx", ed.w).Style("height", "%dpx", ed.h).Body(
				app.Img().ID("editor-image").Class("layer").Alt(ed.image).Attr("draggable", "false").
					Src(apiURL("/api/image", "dataset", ed.dataset, "id", ed.image)),
				app.If(ed.heat != nil, func() app.UI {
					h := ed.heat
					return app.Canvas().ID("heat-canvas").Class("layer heat").Attr("data-testid", "heatmap-canvas").
						Width(ed.w).Height(ed.h).Style("opacity", "%.2f", h.opacity).
						Style("visibility", "%s", map[bool]string{true: "visible", false: "hidden"}[h.on && h.ready()])
				}),
				app.If(hasGT && ed.showGT, func() app.UI {
					u := apiURL("/api/gt", "dataset", ed.dataset, "id", ed.image)
					return app.Div().Class("layer gt-overlay").Attr("data-testid", "gt-overlay").
						Style("mask-image", "url(%q)", u).Style("-webkit-mask-image", "url(%q)", u)
				}),
				app.Canvas().ID("mask-canvas").Class("layer mask").Attr("data-testid", "editor-canvas").
					Width(ed.w).Height(ed.h).Style("opacity", "%.2f", ed.opacity).
					Style("visibility", "%s", map[bool]string{true: "visible", false: "hidden"}[ed.showMask]),
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
