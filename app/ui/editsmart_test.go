package ui

import (
	"testing"

	"github.com/rdre-studio/studio/shared/regions"
)

func TestEditor_ApplySpans_UndoRedo(t *testing.T) {
	e, _ := NewEditor(8, 6)
	spans := []regions.Span{{Y: 1, X0: 2, X1: 5}, {Y: 2, X0: 3, X1: 4}}
	r := e.ApplySpans(spans, 3)
	if r != (Rect{2, 1, 5, 3}) || e.Count() != 4 || e.Pix[1*8+2] != 3 {
		t.Fatalf("ApplySpans: rect %v, %d pixels", r, e.Count())
	}
	if r := e.ApplySpans(spans, 3); !r.Empty() || e.UndoDepth() != 1 {
		t.Fatalf("a second identical ApplySpans: rect %v, undo depth %d; want no step", r, e.UndoDepth())
	}
	if _, ok := e.Undo(); !ok || e.Count() != 0 {
		t.Fatalf("undo left %d pixels", e.Count())
	}
	if _, ok := e.Redo(); !ok || e.Count() != 4 {
		t.Fatalf("redo gave %d pixels", e.Count())
	}
	// Spans outside the mask are clipped, not a panic.
	e.ApplySpans([]regions.Span{{Y: 9, X0: 0, X1: 3}, {Y: 0, X0: -3, X1: 20}}, 1)
	if e.Count() != 12 {
		t.Fatalf("clipped spans: %d pixels, want 12", e.Count())
	}
}

func TestEditor_StrokeSpans_OneStep(t *testing.T) {
	e, _ := NewEditor(8, 6)
	e.StrokeSpans([]regions.Span{{Y: 0, X0: 0, X1: 2}}, 1)
	e.StrokeSpans([]regions.Span{{Y: 5, X0: 6, X1: 8}}, 1)
	if !e.EndStroke() || e.UndoDepth() != 1 || e.Count() != 4 {
		t.Fatalf("stroke of two span sets: depth %d, %d pixels", e.UndoDepth(), e.Count())
	}
	e.Undo()
	if e.Count() != 0 {
		t.Fatalf("undo of the stroke left %d pixels", e.Count())
	}
}

func TestEditor_DropTop_NoRedo(t *testing.T) {
	e, _ := NewEditor(4, 4)
	e.ApplySpans([]regions.Span{{Y: 0, X0: 0, X1: 4}}, 1)
	top := e.topEdit()
	if top == nil {
		t.Fatal("no top edit after ApplySpans")
	}
	e.ApplySpans([]regions.Span{{Y: 1, X0: 0, X1: 4}}, 1)
	if e.topEdit() == top {
		t.Fatal("topEdit did not change with a new edit")
	}
	if _, ok := e.dropTop(); !ok || e.CanRedo() || e.Count() != 4 || e.topEdit() != top {
		t.Fatalf("dropTop: redo %v, %d pixels", e.CanRedo(), e.Count())
	}
}
