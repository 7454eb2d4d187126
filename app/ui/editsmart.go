package ui

import (
	"github.com/rdre-studio/studio/shared/regions"
)

// Edits of the smart tools. They go through the same begin/commit as the brush, so a smart edit is one
// undo step, lands in the history and is saved like any other.

func spanRect(spans []regions.Span) Rect {
	x0, y0, x1, y1 := regions.Bounds(spans)
	return Rect{x0, y0, x1, y1}
}

func (e *Editor) setSpans(spans []regions.Span, value uint8) Rect {
	for _, s := range spans {
		if s.Y < 0 || int(s.Y) >= e.H {
			continue
		}
		x0, x1 := max(0, int(s.X0)), min(e.W, int(s.X1))
		if x1 <= x0 {
			continue
		}
		row := e.Pix[int(s.Y)*e.W : int(s.Y+1)*e.W]
		for x := x0; x < x1; x++ {
			row[x] = value
		}
	}
	return spanRect(spans).clip(e.W, e.H)
}

// ApplySpans sets the pixels of spans to value as one undoable edit and returns the area to repaint;
// an edit that changes no pixel returns an empty Rect and leaves no undo step.
func (e *Editor) ApplySpans(spans []regions.Span, value uint8) Rect {
	e.EndStroke()
	e.begin()
	r := e.setSpans(spans, value)
	e.dirty = r
	if !e.commit() {
		return Rect{}
	}
	return r
}

// StrokeSpans adds spans to the open stroke (opening one if needed): a superpixel brush stroke is one
// undo step however many superpixels it paints. EndStroke closes it.
func (e *Editor) StrokeSpans(spans []regions.Span, value uint8) Rect {
	e.begin()
	r := e.setSpans(spans, value)
	e.dirty = e.dirty.Union(r)
	return r
}

// topEdit identifies the newest undo step (nil when there is none): the wand compares it with the
// step of its last click to know whether that click may still be replaced.
func (e *Editor) topEdit() *uint8 {
	if len(e.undo) == 0 || e.inStroke {
		return nil
	}
	if a := e.undo[len(e.undo)-1].after; len(a) > 0 {
		return &a[0]
	}
	return nil
}

// dropTop reverts the newest edit without keeping it for redo: the wand replacing its own last region.
func (e *Editor) dropTop() (Rect, bool) {
	r, ok := e.Undo()
	if ok {
		e.redo = e.redo[:len(e.redo)-1]
	}
	return r, ok
}
