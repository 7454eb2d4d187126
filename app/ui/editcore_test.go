package ui

import (
	"math"
	"testing"
)

func newTestEditor(t *testing.T, w, h int) *Editor {
	t.Helper()
	e, err := NewEditor(w, h)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewEditor_BadSize_Errors(t *testing.T) {
	for _, s := range [][2]int{{0, 10}, {10, -1}, {20000, 10}} {
		if _, err := NewEditor(s[0], s[1]); err == nil {
			t.Errorf("NewEditor(%d, %d) succeeded", s[0], s[1])
		}
	}
}

func TestEditor_BeginStroke_DiscIsHardEdged(t *testing.T) {
	e := newTestEditor(t, 100, 100)
	r := e.BeginStroke(50, 50, 20, 3)
	if !e.EndStroke() {
		t.Fatal("a dab in the image reported no change")
	}
	n := 0
	for y := 0; y < 100; y++ {
		for x := 0; x < 100; x++ {
			v := e.Pix[y*100+x]
			d := math.Hypot(float64(x)+0.5-50, float64(y)+0.5-50)
			switch {
			case v != 0 && v != 3:
				t.Fatalf("pixel (%d,%d) = %d: only 0 and the class may appear", x, y, v)
			case d <= 9.5 && v != 3:
				t.Fatalf("pixel (%d,%d) at distance %.2f not painted", x, y, d)
			case d > 10.5 && v != 0:
				t.Fatalf("pixel (%d,%d) at distance %.2f painted", x, y, d)
			}
			if v != 0 {
				n++
				if x < r.X0 || x >= r.X1 || y < r.Y0 || y >= r.Y1 {
					t.Fatalf("painted pixel (%d,%d) outside the returned rect %+v", x, y, r)
				}
			}
		}
	}
	if want := math.Pi * 100; math.Abs(float64(n)-want) > 0.08*want {
		t.Fatalf("disc of diameter 20 has %d pixels, want about %.0f", n, want)
	}
}

func TestEditor_StrokeTo_FastMoveLeavesNoGap(t *testing.T) {
	e := newTestEditor(t, 200, 50)
	e.BeginStroke(5, 25, 4, 1)
	e.StrokeTo(195, 25, 4, 1) // one event across the whole image
	e.EndStroke()
	for x := 5; x < 195; x++ {
		if e.Pix[25*200+x] != 1 {
			t.Fatalf("gap in the stroke at x=%d", x)
		}
	}
}

func TestEditor_Undo_WholeStrokeAndRedo(t *testing.T) {
	e := newTestEditor(t, 64, 64)
	e.BeginStroke(10, 10, 6, 1)
	for x := 10.0; x < 50; x += 3 {
		e.StrokeTo(x, 10+x/4, 6, 1)
	}
	e.EndStroke()
	after := append([]uint8(nil), e.Pix...)
	if e.UndoDepth() != 1 {
		t.Fatalf("one stroke made %d undo steps", e.UndoDepth())
	}
	if _, ok := e.Undo(); !ok || e.Count() != 0 {
		t.Fatalf("undo left %d pixels", e.Count())
	}
	if _, ok := e.Redo(); !ok {
		t.Fatal("redo had nothing to do")
	}
	for i := range after {
		if e.Pix[i] != after[i] {
			t.Fatalf("redo differs from the stroke at pixel %d", i)
		}
	}
	if _, ok := e.Redo(); ok {
		t.Fatal("a second redo succeeded")
	}
}

func TestEditor_Undo_HundredSteps(t *testing.T) {
	e := newTestEditor(t, 300, 10)
	for i := range 150 {
		e.BeginStroke(float64(i*2)+0.5, 5, 1, 1)
		e.EndStroke()
	}
	if e.Count() != 150 {
		t.Fatalf("150 dabs labelled %d pixels", e.Count())
	}
	for i := range 150 {
		if _, ok := e.Undo(); !ok {
			t.Fatalf("undo %d failed: the editor must keep at least 100 steps", i+1)
		}
	}
	if e.Count() != 0 {
		t.Fatalf("after undoing everything %d pixels remain", e.Count())
	}
}

func TestEditor_Undo_CappedAtMaxUndo(t *testing.T) {
	e := newTestEditor(t, 500, 2)
	for i := range MaxUndo + 20 {
		e.BeginStroke(float64(i)+0.5, 0.5, 1, 1)
		e.EndStroke()
	}
	if e.UndoDepth() != MaxUndo {
		t.Fatalf("undo depth %d, want the cap %d", e.UndoDepth(), MaxUndo)
	}
}

func TestEditor_EndStroke_NoChangeNoStep(t *testing.T) {
	e := newTestEditor(t, 20, 20)
	e.BeginStroke(5, 5, 4, 0) // erasing nothing
	if e.EndStroke() || e.CanUndo() {
		t.Fatal("an edit that changed no pixel was recorded")
	}
}

func TestEditor_FillPolygon_SquareExact(t *testing.T) {
	e := newTestEditor(t, 50, 50)
	r, err := e.FillPolygon([]Point{{10, 10}, {30, 10}, {30, 40}, {10, 40}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 50; y++ {
		for x := 0; x < 50; x++ {
			in := x >= 10 && x < 30 && y >= 10 && y < 40
			if got := e.Pix[y*50+x]; (got == 2) != in {
				t.Fatalf("pixel (%d,%d) = %d, inside=%v", x, y, got, in)
			}
		}
	}
	if r != (Rect{10, 10, 30, 40}) {
		t.Fatalf("dirty rect %+v", r)
	}
	// Subtract a triangle, then undo restores the square.
	if _, err := e.FillPolygon([]Point{{10, 10}, {30, 10}, {10, 40}}, 0); err != nil {
		t.Fatal(err)
	}
	if e.Pix[12*50+12] != 0 || e.Pix[38*50+28] != 2 {
		t.Fatal("subtracting a triangle did not clear its inside only")
	}
	e.Undo()
	if e.Count() != 20*30 {
		t.Fatalf("undo of the subtraction: %d pixels, want %d", e.Count(), 20*30)
	}
}

func TestEditor_FillPolygon_TooFewPoints(t *testing.T) {
	e := newTestEditor(t, 10, 10)
	if _, err := e.FillPolygon([]Point{{1, 1}, {5, 5}}, 1); err == nil {
		t.Fatal("a two-point polygon was accepted")
	}
}

func TestEditor_Fill_StaysInsideClosedStroke(t *testing.T) {
	e := newTestEditor(t, 60, 60)
	// A closed square outline, 2 px wide.
	if _, err := e.FillPolygon([]Point{{10, 10}, {50, 10}, {50, 50}, {10, 50}}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.FillPolygon([]Point{{12, 12}, {48, 12}, {48, 48}, {12, 48}}, 0); err != nil {
		t.Fatal(err)
	}
	outline := e.Count()
	r, err := e.Fill(30, 30, 1)
	if err != nil || e.Count() != 40*40 {
		t.Fatalf("fill inside the outline: %d pixels, want %d (outline %d)", e.Count(), 40*40, outline)
	}
	if e.Pix[5*60+5] != 0 {
		t.Fatal("fill leaked outside the outline")
	}
	if r != (Rect{12, 12, 48, 48}) {
		t.Fatalf("dirty rect %+v", r)
	}
	if r, _ := e.Fill(30, 30, 1); !r.Empty() {
		t.Fatal("filling a region with its own value changed something")
	}
	if r, _ := e.Fill(-1, 3, 1); !r.Empty() {
		t.Fatal("fill outside the image changed something")
	}
}

func TestEditor_Fill_OpenAreaRefused(t *testing.T) {
	e := newTestEditor(t, 40, 30)
	if r, err := e.Fill(20, 15, 1); err != ErrOpenArea || !r.Empty() || e.Count() != 0 || e.CanUndo() {
		t.Fatalf("fill of an empty mask: rect %+v, err %v, %d pixels, undo %v", r, err, e.Count(), e.CanUndo())
	}
	// A band from the left to the right border: above and below it each reach only three borders.
	if _, err := e.FillPolygon([]Point{{0, 10}, {40, 10}, {40, 12}, {0, 12}}, 2); err != nil {
		t.Fatal(err)
	}
	r, err := e.Fill(20, 3, 1)
	if err != nil || r != (Rect{0, 0, 40, 10}) || e.Pix[3*40+20] != 1 || e.Pix[20*40+20] != 0 {
		t.Fatalf("fill above an edge-to-edge band: rect %+v, err %v", r, err)
	}
	// Outside a blob the region is open: the refusal leaves every pixel and the history as they were.
	e = newTestEditor(t, 40, 30)
	e.BeginStroke(20, 15, 8, 3)
	e.EndStroke()
	before := append([]uint8(nil), e.Pix...)
	if _, err := e.Fill(2, 2, 1); err != ErrOpenArea || e.UndoDepth() != 1 {
		t.Fatalf("fill around a blob: %v, undo depth %d", err, e.UndoDepth())
	}
	for i := range before {
		if e.Pix[i] != before[i] {
			t.Fatalf("a refused fill changed pixel %d", i)
		}
	}
}

func TestEditor_Clear_Undoable(t *testing.T) {
	e := newTestEditor(t, 30, 30)
	e.BeginStroke(15, 15, 10, 4)
	e.EndStroke()
	n := e.Count()
	if r := e.Clear(); r.Empty() || e.Count() != 0 {
		t.Fatal("clear left pixels")
	}
	e.Undo()
	if e.Count() != n {
		t.Fatalf("undo of clear: %d pixels, want %d", e.Count(), n)
	}
	if r := (&Editor{W: 30, H: 30, Pix: make([]uint8, 900)}).Clear(); !r.Empty() {
		t.Fatal("clearing an empty mask reported a change")
	}
}

func TestEditor_Load_WrongSizeErrors(t *testing.T) {
	e := newTestEditor(t, 4, 4)
	if err := e.Load(make([]uint8, 15)); err == nil {
		t.Fatal("loading 15 pixels into a 4x4 editor succeeded")
	}
	if _, err := e.Replace(make([]uint8, 17)); err == nil {
		t.Fatal("replacing with 17 pixels succeeded")
	}
}

func TestParseColor_Forms(t *testing.T) {
	if c, ok := parseColor("#ff8000"); !ok || c != [3]uint8{255, 128, 0} {
		t.Fatalf("parseColor(#ff8000) = %v, %v", c, ok)
	}
	for _, s := range []string{"", "ff8000", "#ff80", "#gg0000"} {
		if _, ok := parseColor(s); ok {
			t.Errorf("parseColor(%q) accepted", s)
		}
	}
}

// BenchmarkEditor_StrokeTo measures one pointer move of a 24 px brush on a 1024x1024 mask: the Go part
// of the per-event cost in the browser.
func BenchmarkEditor_StrokeTo(b *testing.B) {
	e, _ := NewEditor(1024, 1024)
	e.BeginStroke(10, 10, 24, 1)
	x := 10.0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x += 4
		if x > 1000 {
			x = 10
		}
		e.StrokeTo(x, 500+200*math.Sin(x/50), 24, 1)
	}
}

// BenchmarkEditor_EndStroke measures closing a stroke on a 1024x1024 mask (the undo snapshot).
func BenchmarkEditor_EndStroke(b *testing.B) {
	e, _ := NewEditor(1024, 1024)
	for i := 0; i < b.N; i++ {
		e.BeginStroke(100, 100, 24, 1)
		e.StrokeTo(900, 900, 24, uint8(1+i%2))
		e.EndStroke()
	}
}

func TestEditor_Locked_KeepsPixels(t *testing.T) {
	e := newTestEditor(t, 40, 40)
	e.BeginStroke(20, 20, 10, 2)
	e.EndStroke()
	locked := e.Count()
	e.Locked[2] = true
	// Brush, eraser, polygon, clear and replace around and over the locked class.
	e.BeginStroke(5, 20, 30, 1)
	e.StrokeTo(35, 20, 30, 1)
	e.EndStroke()
	if e.Pix[20*40+20] != 2 {
		t.Fatal("the brush painted over a locked class")
	}
	if e.Pix[20*40+2] != 1 {
		t.Fatal("the brush did not paint around the locked class")
	}
	e.BeginStroke(20, 20, 40, 0)
	e.EndStroke()
	if _, err := e.FillPolygon([]Point{{0, 0}, {40, 0}, {40, 40}, {0, 40}}, 3); err != nil {
		t.Fatal(err)
	}
	e.Clear()
	e.Replace(make([]uint8, 40*40))
	n := 0
	for _, v := range e.Pix {
		if v == 2 {
			n++
		}
	}
	if n != locked || e.Count() != locked {
		t.Fatalf("locked pixels %d of %d kept, %d labelled in all", n, locked, e.Count())
	}
	if _, err := e.Fill(20, 20, 1); err != ErrLocked {
		t.Fatalf("fill on a locked class: %v, want ErrLocked", err)
	}
	// Unlocked, it edits again.
	e.Locked[2] = false
	e.Clear()
	if e.Count() != 0 {
		t.Fatal("clear after unlock left pixels")
	}
}
