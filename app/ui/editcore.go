package ui

import (
	"errors"
	"fmt"
	"math"
)

// Rect is a pixel rectangle [X0,X1) x [Y0,Y1). The zero Rect is empty.
type Rect struct{ X0, Y0, X1, Y1 int }

// Empty reports whether r covers no pixel.
func (r Rect) Empty() bool { return r.X1 <= r.X0 || r.Y1 <= r.Y0 }

// Union returns the smallest rectangle covering r and s.
func (r Rect) Union(s Rect) Rect {
	if r.Empty() {
		return s
	}
	if s.Empty() {
		return r
	}
	return Rect{min(r.X0, s.X0), min(r.Y0, s.Y0), max(r.X1, s.X1), max(r.Y1, s.Y1)}
}

func (r Rect) clip(w, h int) Rect {
	r = Rect{max(r.X0, 0), max(r.Y0, 0), min(r.X1, w), min(r.Y1, h)}
	if r.Empty() {
		return Rect{}
	}
	return r
}

// MaxUndo is how many whole edits the editor can undo. The issue asks for at least 100.
const MaxUndo = 200

// maxUndoBytes bounds the memory held by the undo history: a full-image fill of a 4096x4096 mask costs
// 32 MiB, so a long session of large fills drops its oldest steps instead of exhausting the tab.
const maxUndoBytes = 512 << 20

type edit struct {
	r             Rect
	before, after []uint8
}

// Editor is the label mask being edited plus its undo history. An edit is one whole user action (a
// brush stroke from press to release, a polygon, a fill, a clear), so undo never splits a stroke.
//
// It is plain Go with no browser dependency: the canvas layer calls it and repaints the Rect each
// operation returns, which is what keeps strokes cheap on large images.
type Editor struct {
	W, H int
	Pix  []uint8
	// Locked marks class indices whose pixels no edit may change (a locked class in the legend): brush,
	// eraser, polygon, fill, clear and replace all leave them as they are.
	Locked [256]bool

	undo, redo []edit
	undoBytes  int

	// An open stroke: a copy of Pix from its start and the area it touched so far.
	inStroke bool
	backup   []uint8
	dirty    Rect
	last     [2]float64
}

// NewEditor returns an editor over an all-background w x h mask.
func NewEditor(w, h int) (*Editor, error) {
	if w <= 0 || h <= 0 || w > 16384 || h > 16384 {
		return nil, fmt.Errorf("editor size %dx%d outside 1..16384", w, h)
	}
	return &Editor{W: w, H: h, Pix: make([]uint8, w*h)}, nil
}

// Load replaces the mask (a reload from the server) and forgets the history, which described another
// mask.
func (e *Editor) Load(pix []uint8) error {
	if len(pix) != e.W*e.H {
		return fmt.Errorf("load mask: %d pixels, editor is %dx%d", len(pix), e.W, e.H)
	}
	copy(e.Pix, pix)
	e.undo, e.redo, e.undoBytes = nil, nil, 0
	e.inStroke = false
	return nil
}

// heldBytes is the memory the editor keeps: the mask, the stroke backup and the undo history.
func (e *Editor) heldBytes() int { return len(e.Pix) + len(e.backup) + e.undoBytes }

// CanUndo and CanRedo report whether there is a step to undo or redo.
func (e *Editor) CanUndo() bool { return len(e.undo) > 0 }

// CanRedo reports whether there is a step to redo.
func (e *Editor) CanRedo() bool { return len(e.redo) > 0 }

// UndoDepth returns the number of steps that can be undone.
func (e *Editor) UndoDepth() int { return len(e.undo) }

func (e *Editor) begin() {
	if e.inStroke {
		return
	}
	if len(e.backup) != len(e.Pix) {
		e.backup = make([]uint8, len(e.Pix))
	}
	copy(e.backup, e.Pix)
	e.inStroke = true
	e.dirty = Rect{}
}

// commit closes the open edit and records it for undo when it changed a pixel.
func (e *Editor) commit() bool {
	if !e.inStroke {
		return false
	}
	e.inStroke = false
	r := e.dirty
	if r.Empty() {
		return false
	}
	before := extract(e.backup, e.W, r)
	after := extract(e.Pix, e.W, r)
	changed := false
	for i := range before {
		if before[i] != after[i] {
			changed = true
			break
		}
	}
	if !changed {
		return false
	}
	e.push(edit{r: r, before: before, after: after})
	e.redo = nil
	return true
}

func (e *Editor) push(ed edit) {
	e.undo = append(e.undo, ed)
	e.undoBytes += len(ed.before) + len(ed.after)
	for len(e.undo) > MaxUndo || (e.undoBytes > maxUndoBytes && len(e.undo) > 1) {
		e.undoBytes -= len(e.undo[0].before) + len(e.undo[0].after)
		e.undo[0] = edit{}
		e.undo = e.undo[1:]
	}
}

func extract(pix []uint8, w int, r Rect) []uint8 {
	out := make([]uint8, 0, (r.X1-r.X0)*(r.Y1-r.Y0))
	for y := r.Y0; y < r.Y1; y++ {
		out = append(out, pix[y*w+r.X0:y*w+r.X1]...)
	}
	return out
}

func paste(pix []uint8, w int, r Rect, src []uint8) {
	rw := r.X1 - r.X0
	for y := r.Y0; y < r.Y1; y++ {
		copy(pix[y*w+r.X0:y*w+r.X1], src[(y-r.Y0)*rw:(y-r.Y0+1)*rw])
	}
}

// Undo reverts the newest edit and returns the area to repaint.
func (e *Editor) Undo() (Rect, bool) {
	e.EndStroke()
	if len(e.undo) == 0 {
		return Rect{}, false
	}
	ed := e.undo[len(e.undo)-1]
	e.undo = e.undo[:len(e.undo)-1]
	e.undoBytes -= len(ed.before) + len(ed.after)
	paste(e.Pix, e.W, ed.r, ed.before)
	e.redo = append(e.redo, ed)
	return ed.r, true
}

// Redo re-applies the newest undone edit and returns the area to repaint.
func (e *Editor) Redo() (Rect, bool) {
	e.EndStroke()
	if len(e.redo) == 0 {
		return Rect{}, false
	}
	ed := e.redo[len(e.redo)-1]
	e.redo = e.redo[:len(e.redo)-1]
	paste(e.Pix, e.W, ed.r, ed.after)
	e.undo = append(e.undo, ed)
	e.undoBytes += len(ed.before) + len(ed.after)
	return ed.r, true
}

// BeginStroke starts a brush or eraser stroke at (x, y) in image pixels and paints its first dab.
// value is the class index to paint, 0 to erase; size is the brush diameter in pixels.
func (e *Editor) BeginStroke(x, y float64, size int, value uint8) Rect {
	e.begin()
	e.last = [2]float64{x, y}
	r := e.dab(x, y, size, value)
	e.dirty = e.dirty.Union(r)
	return r
}

// StrokeTo continues the open stroke to (x, y), painting dabs close enough together that the line
// has no gaps at any speed of the pointer.
func (e *Editor) StrokeTo(x, y float64, size int, value uint8) Rect {
	if !e.inStroke {
		return e.BeginStroke(x, y, size, value)
	}
	x0, y0 := e.last[0], e.last[1]
	dist := math.Hypot(x-x0, y-y0)
	step := math.Max(1, float64(size)/4)
	n := int(math.Ceil(dist / step))
	var r Rect
	for i := 1; i <= n; i++ {
		t := float64(i) / float64(n)
		r = r.Union(e.dab(x0+(x-x0)*t, y0+(y-y0)*t, size, value))
	}
	e.last = [2]float64{x, y}
	e.dirty = e.dirty.Union(r)
	return r
}

// EndStroke closes the open stroke; it reports whether the stroke changed the mask.
func (e *Editor) EndStroke() bool { return e.commit() }

// dab paints a hard-edged disc of diameter size centred on (cx, cy): a pixel is inside when its centre
// is, so the mask stays binary per class with no anti-aliased edge.
func (e *Editor) dab(cx, cy float64, size int, value uint8) Rect {
	if size < 1 {
		size = 1
	}
	if size == 1 {
		// A one-pixel brush paints exactly the pixel under the pointer.
		x, y := int(math.Floor(cx)), int(math.Floor(cy))
		if x < 0 || y < 0 || x >= e.W || y >= e.H {
			return Rect{}
		}
		if e.Locked[e.Pix[y*e.W+x]] {
			return Rect{}
		}
		e.Pix[y*e.W+x] = value
		return Rect{x, y, x + 1, y + 1}
	}
	rad := float64(size) / 2
	r := Rect{int(math.Floor(cx - rad)), int(math.Floor(cy - rad)), int(math.Ceil(cx+rad)) + 1, int(math.Ceil(cy+rad)) + 1}.clip(e.W, e.H)
	if r.Empty() {
		return Rect{}
	}
	r2 := rad * rad
	var touched Rect
	for y := r.Y0; y < r.Y1; y++ {
		dy := float64(y) + 0.5 - cy
		row := e.Pix[y*e.W : (y+1)*e.W]
		for x := r.X0; x < r.X1; x++ {
			dx := float64(x) + 0.5 - cx
			if dx*dx+dy*dy <= r2 && !e.Locked[row[x]] {
				row[x] = value
				touched = touched.Union(Rect{x, y, x + 1, y + 1})
			}
		}
	}
	return touched
}

// Point is a polygon vertex in image pixels.
type Point struct{ X, Y float64 }

// ErrPolygon is returned for a polygon with fewer than three vertices.
var ErrPolygon = errors.New("a polygon needs at least three points")

// FillPolygon sets every pixel whose centre lies inside the polygon (even-odd rule) to value, as one
// undoable edit. value 0 subtracts the polygon from the mask.
func (e *Editor) FillPolygon(pts []Point, value uint8) (Rect, error) {
	if len(pts) < 3 {
		return Rect{}, ErrPolygon
	}
	e.EndStroke()
	e.begin()
	minY, maxY := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
	}
	y0 := max(0, int(math.Floor(minY)))
	y1 := min(e.H, int(math.Ceil(maxY))+1)
	xs := make([]float64, 0, len(pts))
	var r Rect
	for y := y0; y < y1; y++ {
		cy := float64(y) + 0.5
		xs = xs[:0]
		for i := range pts {
			a, b := pts[i], pts[(i+1)%len(pts)]
			if (a.Y <= cy) != (b.Y <= cy) {
				xs = append(xs, a.X+(cy-a.Y)*(b.X-a.X)/(b.Y-a.Y))
			}
		}
		sortFloats(xs)
		for k := 0; k+1 < len(xs); k += 2 {
			// Pixel x is inside when its centre x+0.5 lies in [xs[k], xs[k+1]).
			xa := max(0, int(math.Ceil(xs[k]-0.5)))
			xb := min(e.W, int(math.Ceil(xs[k+1]-0.5)))
			if xb <= xa {
				continue
			}
			row := e.Pix[y*e.W : (y+1)*e.W]
			for x := xa; x < xb; x++ {
				if !e.Locked[row[x]] {
					row[x] = value
				}
			}
			r = r.Union(Rect{xa, y, xb, y + 1})
		}
	}
	e.dirty = r
	e.commit()
	return r, nil
}

func sortFloats(a []float64) {
	// Insertion sort: a scanline crosses a hand-drawn polygon only a few times.
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// ErrOpenArea is returned by Fill for a region that reaches all four image borders: that is the open
// background around the drawing, and a labeller who clicks it has missed the inside of an outline.
var ErrOpenArea = errors.New("this area is not closed: it reaches all four image borders; fill works inside a closed outline (the image border may close one or more sides)")

// ErrLocked is returned by Fill on a pixel of a locked class.
var ErrLocked = errors.New("this area belongs to a locked class: unlock it in the legend to change it")

// Fill flood-fills the 4-connected region of pixels that share the value at (x, y) with value, as one
// undoable edit: clicked inside a closed stroke it fills the inside and stops at the stroke. A region
// that touches all four image borders is refused with ErrOpenArea and the mask is left as it was; one
// that touches fewer counts as closed by the border (a stroke from edge to edge around a defect there).
func (e *Editor) Fill(x, y int, value uint8) (Rect, error) {
	if x < 0 || y < 0 || x >= e.W || y >= e.H {
		return Rect{}, nil
	}
	target := e.Pix[y*e.W+x]
	if target == value {
		return Rect{}, nil
	}
	if e.Locked[target] {
		return Rect{}, ErrLocked
	}
	e.EndStroke()
	e.begin()
	var r Rect
	stack := []int{y*e.W + x}
	e.Pix[y*e.W+x] = value
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		px, py := i%e.W, i/e.W
		r = r.Union(Rect{px, py, px + 1, py + 1})
		if px > 0 && e.Pix[i-1] == target {
			e.Pix[i-1] = value
			stack = append(stack, i-1)
		}
		if px+1 < e.W && e.Pix[i+1] == target {
			e.Pix[i+1] = value
			stack = append(stack, i+1)
		}
		if py > 0 && e.Pix[i-e.W] == target {
			e.Pix[i-e.W] = value
			stack = append(stack, i-e.W)
		}
		if py+1 < e.H && e.Pix[i+e.W] == target {
			e.Pix[i+e.W] = value
			stack = append(stack, i+e.W)
		}
	}
	if r == (Rect{0, 0, e.W, e.H}) {
		// The bounding box spans the image exactly when the region reaches every border.
		paste(e.Pix, e.W, r, extract(e.backup, e.W, r))
		e.inStroke = false
		return Rect{}, ErrOpenArea
	}
	e.dirty = r
	e.commit()
	return r, nil
}

// Clear erases the whole mask as one undoable edit.
func (e *Editor) Clear() Rect {
	e.EndStroke()
	e.begin()
	for i, v := range e.Pix {
		if !e.Locked[v] {
			e.Pix[i] = 0
		}
	}
	e.dirty = Rect{0, 0, e.W, e.H}
	if !e.commit() {
		return Rect{}
	}
	return Rect{0, 0, e.W, e.H}
}

// Replace sets the whole mask to pix as one undoable edit (a draft from the model's prediction, a
// reverted version).
func (e *Editor) Replace(pix []uint8) (Rect, error) {
	if len(pix) != len(e.Pix) {
		return Rect{}, fmt.Errorf("replace mask: %d pixels, editor is %dx%d", len(pix), e.W, e.H)
	}
	e.EndStroke()
	e.begin()
	for i, v := range pix {
		if !e.Locked[e.Pix[i]] {
			e.Pix[i] = v
		}
	}
	e.dirty = Rect{0, 0, e.W, e.H}
	e.commit()
	return Rect{0, 0, e.W, e.H}, nil
}

// Count returns the number of labelled pixels.
func (e *Editor) Count() int {
	n := 0
	for _, v := range e.Pix {
		if v != 0 {
			n++
		}
	}
	return n
}
