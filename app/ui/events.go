package ui

import (
	"fmt"
	"math"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// listener is a DOM event listener installed on window for the life of the page.
type listener struct {
	event string
	fn    app.Func
}

var listeners []listener

// installListeners routes pointer, wheel and key events to the editor without going through go-app's
// render cycle: a pointer move paints and returns, and only edits that change the toolbar (a finished
// stroke, undo) ask for a re-render.
func (s *Studio) installListeners(ctx app.Context) {
	add := func(event string, f func(e app.Value)) {
		fn := app.FuncOf(func(this app.Value, args []app.Value) any {
			if len(args) > 0 && s.fatal == "" {
				s.guard(event, func() { f(args[0]) })
			}
			return nil
		})
		app.Window().Call("addEventListener", event, fn, map[string]any{"passive": false})
		listeners = append(listeners, listener{event, fn})
	}
	add("pointerdown", s.onPointerDown)
	add("pointermove", s.onPointerMove)
	add("pointerup", s.onPointerUp)
	add("pointercancel", s.onPointerUp)
	add("dblclick", func(e app.Value) {
		if s.editing(e) && s.ed.tool == toolPolygon {
			e.Call("preventDefault")
			s.closePolygonMode(e.Get("altKey").Bool())
		}
	})
	add("wheel", s.onWheel)
	s.installSmartListeners(add)
	add("keydown", s.onKeyDown)
	add("keyup", func(e app.Value) {
		if e.Get("code").String() == "Space" && s.ed != nil {
			s.ed.spaceDown = false
		}
	})
	add("resize", func(app.Value) {
		if s.ed.ready() && s.ed.fitted {
			s.ed.fit()
		}
	})
}

func (s *Studio) removeListeners() {
	for _, l := range listeners {
		app.Window().Call("removeEventListener", l.event, l.fn)
		l.fn.Release()
	}
	listeners = nil
}

// editing reports whether e happened inside the editor's viewport with a mask loaded.
func (s *Studio) editing(e app.Value) bool {
	if s.view != viewImage || !s.ed.ready() || s.ed.canvas == nil || !s.ed.canvas.Truthy() {
		return false
	}
	t := e.Get("target")
	return t.Truthy() && t.Get("closest").Truthy() && t.Call("closest", "#viewport").Truthy()
}

func (s *Studio) onPointerDown(e app.Value) {
	if !s.editing(e) {
		return
	}
	// Drawing takes the focus from the toolbar: a button that kept it (Clear, say) would otherwise be
	// pressed by the Enter that closes a polygon.
	if a := app.Window().Get("document").Get("activeElement"); a.Truthy() && a.Get("blur").Truthy() && !typing(a) {
		a.Call("blur")
	}
	if s.smartPointerDown(e) {
		return
	}
	ed := s.ed
	btn := e.Get("button").Int()
	if btn == 1 || (btn == 0 && ed.spaceDown) {
		e.Call("preventDefault")
		ed.panning = true
		ed.panX, ed.panY = e.Get("clientX").Float(), e.Get("clientY").Float()
		ed.vp.Call("setPointerCapture", e.Get("pointerId"))
		return
	}
	if btn != 0 {
		return
	}
	e.Call("preventDefault")
	p := ed.toImage(e)
	if ed.tool != toolEraser && !(ed.tool == toolPolygon && ed.polySubtract) && ed.ed.Locked[uint8(ed.cls)] {
		msg := fmt.Sprintf("class %q is locked: unlock it in the legend to draw with it", ed.className(ed.cls))
		s.mctx.Dispatch(func(app.Context) { ed.toolMsg = msg })
		return
	}
	switch ed.tool {
	case toolBrush, toolEraser:
		if ed.toolMsg != "" {
			s.mctx.Dispatch(func(app.Context) { ed.toolMsg = "" })
		}
		ed.stroking = true
		ed.strokeValue = ed.paintValue()
		ed.vp.Call("setPointerCapture", e.Get("pointerId"))
		ed.paint(ed.ed.BeginStroke(p.X, p.Y, ed.size, ed.strokeValue))
		recordLatency(e)
	case toolFill:
		r, err := ed.ed.Fill(int(math.Floor(p.X)), int(math.Floor(p.Y)), ed.paintValue())
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != ed.toolMsg {
			s.mctx.Dispatch(func(app.Context) { ed.toolMsg = msg })
		}
		if !r.Empty() {
			ed.paint(r)
			s.changed()
		}
	case toolPolygon:
		if len(ed.poly) >= 3 {
			f := ed.poly[0]
			if math.Hypot(p.X-f.X, p.Y-f.Y)*ed.zoom < 10 {
				s.closePolygon()
				return
			}
		}
		// A click just past the border (within 16 screen pixels) puts the vertex on it: defects at a part's
		// edge need vertices there, and the last image row is hard to hit. Farther out is not a vertex.
		m := 16 / ed.zoom
		if p.X < -m || p.Y < -m || p.X > float64(ed.w)+m || p.Y > float64(ed.h)+m {
			return
		}
		p.X, p.Y = min(max(p.X, 0), float64(ed.w)), min(max(p.Y, 0), float64(ed.h))
		ed.poly = append(ed.poly, p)
		ed.cursor = p
		ed.drawPreview()
	}
}

func (s *Studio) onPointerMove(e app.Value) {
	ed := s.ed
	if !ed.ready() || s.view != viewImage {
		return
	}
	if ed.panning {
		x, y := e.Get("clientX").Float(), e.Get("clientY").Float()
		ed.tx += x - ed.panX
		ed.ty += y - ed.panY
		ed.panX, ed.panY = x, y
		ed.applyTransform()
		return
	}
	if s.smartPointerMove(e) {
		return
	}
	if ed.stroking {
		t0 := app.Window().Get("performance").Call("now").Float()
		// Coalesced events carry the positions the browser merged into this one: using them keeps
		// fast strokes round instead of polygonal.
		var r Rect
		if gc := e.Get("getCoalescedEvents"); gc.Truthy() {
			evs := e.Call("getCoalescedEvents")
			for i := 0; i < evs.Length(); i++ {
				p := ed.toImage(evs.Index(i))
				r = r.Union(ed.ed.StrokeTo(p.X, p.Y, ed.size, ed.strokeValue))
			}
		}
		p := ed.toImage(e)
		r = r.Union(ed.ed.StrokeTo(p.X, p.Y, ed.size, ed.strokeValue))
		ed.paint(r)
		ed.drawCursor(p)
		recordLatency(e)
		pushSample("rdreStrokeWork", app.Window().Get("performance").Call("now").Float()-t0)
		return
	}
	if ed.tool == toolPolygon && len(ed.poly) > 0 {
		ed.cursor = ed.toImage(e)
		ed.drawPreview()
		return
	}
	if s.editing(e) {
		ed.drawCursor(ed.toImage(e))
	} else if !ed.cursorRect.Empty() {
		ed.drawCursor(Point{-1, -1})
	}
}

func (s *Studio) onPointerUp(e app.Value) {
	ed := s.ed
	if !ed.ready() {
		return
	}
	if ed.panning {
		ed.panning = false
		return
	}
	if s.smartPointerUp(e) {
		return
	}
	if ed.stroking {
		ed.stroking = false
		if ed.ed.EndStroke() {
			s.changed()
		}
	}
}

// typing reports whether a key pressed on target edits text. Only text fields keep their keys: a slider,
// checkbox, select or button the user just touched keeps the focus, and the shortcuts must still work.
func typing(t app.Value) bool {
	if !t.Truthy() || !t.Get("tagName").Truthy() {
		return false
	}
	switch t.Get("tagName").String() {
	case "TEXTAREA":
		return true
	case "INPUT":
		switch t.Get("type").String() {
		case "range", "checkbox", "radio", "color", "button", "submit", "reset", "file", "image":
			return false
		}
		return true
	}
	return t.Get("isContentEditable").Truthy()
}

// recordLatency keeps, per painted pointer event, the time from the event to the end of its repaint.
func recordLatency(e app.Value) {
	ts := e.Get("timeStamp")
	if ts.Type() != app.TypeNumber {
		return
	}
	pushSample("rdreStrokeLatency", app.Window().Get("performance").Call("now").Float()-ts.Float())
}

func (s *Studio) onWheel(e app.Value) {
	if !s.editing(e) {
		return
	}
	e.Call("preventDefault")
	r := s.ed.vp.Call("getBoundingClientRect")
	dy := e.Get("deltaY").Float()
	s.ed.zoomAt(math.Exp(-dy*0.0015), e.Get("clientX").Float()-r.Get("left").Float(), e.Get("clientY").Float()-r.Get("top").Float())
}

func (s *Studio) onKeyDown(e app.Value) {
	if s.view != viewImage || !s.ed.ready() {
		return
	}
	ed := s.ed
	key := e.Get("key").String()
	if typing(e.Get("target")) && key != "Escape" {
		return
	}
	ctrl := e.Get("ctrlKey").Bool() || e.Get("metaKey").Bool()
	shift := e.Get("shiftKey").Bool()
	if !ctrl && s.smartKey(e, key) {
		e.Call("preventDefault")
		s.mctx.Dispatch(nil)
		return
	}
	handled := true
	rerender := true
	switch {
	case ctrl && (key == "z" || key == "Z") && !shift:
		s.undo()
	case ctrl && ((key == "z" || key == "Z") && shift || key == "y" || key == "Y"):
		s.redo()
	case ctrl:
		handled = false
	case e.Get("code").String() == "Space":
		ed.spaceDown = true
		rerender = false
	case key == "[":
		ed.size = max(1, int(math.Round(float64(ed.size)*0.8)))
	case key == "]":
		ed.size = min(256, max(ed.size+1, int(math.Round(float64(ed.size)*1.25))))
	case len(key) == 1 && key[0] >= '1' && key[0] <= '9':
		if i := int(key[0] - '1'); i < len(ed.classes) {
			ed.cls = ed.classes[i].Index
		}
	case key == "b":
		ed.tool = toolBrush
	case key == "e":
		ed.tool = toolEraser
	case key == "p":
		ed.tool = toolPolygon
	case key == "f":
		ed.tool = toolFill
	case key == "+" || key == "=":
		ed.zoomCenter(1.25)
		rerender = false
	case key == "-":
		ed.zoomCenter(0.8)
		rerender = false
	case key == "0":
		ed.fit()
		rerender = false
	case key == "a":
		ed.actualSize()
		rerender = false
	case key == "Enter":
		s.closePolygon()
	case key == "Escape":
		ed.poly = nil
		ed.help = false
		ed.drawPreview()
	case key == "m":
		ed.showMask = !ed.showMask
	case key == "g":
		ed.showGT = !ed.showGT
	case key == "o" && ed.heat != nil:
		ed.heat.on = !ed.heat.on
		s.loadHeat(ed)
		s.mctx.Defer(func(app.Context) { s.paintHeat(ed) })
	case key == "c" && ed.heat != nil:
		ed.heat.compare = !ed.heat.compare
		s.paintHeat(ed)
	case key == "r":
		s.mctx.Dispatch(s.toggleNoDefect)
		rerender = false
	case key == "n":
		s.mctx.Dispatch(s.goNextToDo)
		rerender = false
	case key == "?" || key == "h":
		ed.help = !ed.help
	case key == "ArrowRight" || key == "j":
		s.mctx.Dispatch(func(ctx app.Context) { s.goNeighbour(ctx, 1) })
		rerender = false
	case key == "ArrowLeft" || key == "k":
		s.mctx.Dispatch(func(ctx app.Context) { s.goNeighbour(ctx, -1) })
		rerender = false
	default:
		handled = false
	}
	if handled {
		e.Call("preventDefault")
		if rerender {
			s.mctx.Dispatch(nil)
		}
	}
}
