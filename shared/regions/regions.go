// Package regions finds image regions for the mask editor's smart tools: region growing from a seed
// (the magic wand), SLIC superpixels, and connected components of a label mask. It is plain Go with no
// syscalls so that it runs in the browser (js/wasm) as well as on the server.
//
// Regions are returned as horizontal spans, which is what the editor paints and what keeps a 1024x1024
// region cheap to apply: a span costs one copy, not one call per pixel.
package regions

import (
	"errors"
	"fmt"
)

// Span is the pixels [X0, X1) of row Y.
type Span struct{ Y, X0, X1 int32 }

// Count returns the number of pixels covered by spans (they never overlap when they come from this
// package).
func Count(spans []Span) int {
	n := 0
	for _, s := range spans {
		n += int(s.X1 - s.X0)
	}
	return n
}

// Bounds returns the smallest rectangle [x0,x1) x [y0,y1) covering spans; all zero when there are none.
func Bounds(spans []Span) (x0, y0, x1, y1 int) {
	if len(spans) == 0 {
		return 0, 0, 0, 0
	}
	x0, y0 = int(spans[0].X0), int(spans[0].Y)
	x1, y1 = int(spans[0].X1), int(spans[0].Y)+1
	for _, s := range spans[1:] {
		x0, x1 = min(x0, int(s.X0)), max(x1, int(s.X1))
		y0, y1 = min(y0, int(s.Y)), max(y1, int(s.Y)+1)
	}
	return x0, y0, x1, y1
}

// RGBA is an image as the browser's getImageData returns it: 4 bytes per pixel, row after row. Alpha is
// ignored.
type RGBA struct {
	W, H int
	Pix  []uint8
}

// NewRGBA checks that pix holds a w x h RGBA image.
func NewRGBA(w, h int, pix []uint8) (*RGBA, error) {
	if w <= 0 || h <= 0 || w > 1<<15 || h > 1<<15 {
		return nil, fmt.Errorf("regions: image size %dx%d outside 1..32768", w, h)
	}
	if len(pix) != w*h*4 {
		return nil, fmt.Errorf("regions: %d bytes for a %dx%d RGBA image, want %d", len(pix), w, h, w*h*4)
	}
	return &RGBA{W: w, H: h, Pix: pix}, nil
}

// ErrOutside is returned for a seed outside the image.
var ErrOutside = errors.New("the point is outside the image")

// Filler grows regions. It keeps its buffers between calls, so a tool that grows a region on every
// click or slider step allocates once per image size, not once per region.
type Filler struct {
	seen  []uint32 // seen[i] == gen: pixel i was visited by the current fill
	gen   uint32
	stack []int32
}

func (f *Filler) reset(n int) {
	if len(f.seen) != n {
		f.seen = make([]uint32, n)
		f.gen = 0
	}
	f.gen++
	if f.gen == 0 {
		// The generation counter wrapped: old marks could collide with the new generation.
		clear(f.seen)
		f.gen = 1
	}
	f.stack = f.stack[:0]
}

// Grow returns the 4-connected region around (x, y) whose pixels are within tol of the seed pixel's
// colour: every channel (R, G, B) differs from the seed's by at most tol. tol 0 selects the connected
// pixels of exactly the seed's colour. The spans are appended to dst.
func (f *Filler) Grow(img *RGBA, x, y, tol int, dst []Span) ([]Span, error) {
	if x < 0 || y < 0 || x >= img.W || y >= img.H {
		return dst, ErrOutside
	}
	tol = max(0, min(255, tol))
	o := (y*img.W + x) * 4
	sr, sg, sb := int(img.Pix[o]), int(img.Pix[o+1]), int(img.Pix[o+2])
	pix := img.Pix
	in := func(i int) bool {
		p := pix[i*4 : i*4+3 : i*4+3]
		dr, dg, db := int(p[0])-sr, int(p[1])-sg, int(p[2])-sb
		return dr <= tol && -dr <= tol && dg <= tol && -dg <= tol && db <= tol && -db <= tol
	}
	return f.fill(img.W, img.H, x, y, false, in, dst), nil
}

// Component returns the connected region of label pixels equal to the one at (x, y), 8-connected as
// MVTec's regions are (two blobs that touch diagonally are one defect). The spans are appended to dst.
func (f *Filler) Component(pix []uint8, w, h, x, y int, dst []Span) ([]Span, error) {
	if len(pix) != w*h {
		return dst, fmt.Errorf("regions: %d label pixels for %dx%d", len(pix), w, h)
	}
	if x < 0 || y < 0 || x >= w || y >= h {
		return dst, ErrOutside
	}
	v := pix[y*w+x]
	return f.fill(w, h, x, y, true, func(i int) bool { return pix[i] == v }, dst), nil
}

// fill is a scanline flood fill: it extends each seed to a whole run of its row and seeds the rows above
// and below once per run, so it touches each pixel a small constant number of times.
func (f *Filler) fill(w, h, x, y int, conn8 bool, in func(i int) bool, dst []Span) []Span {
	f.reset(w * h)
	seen, gen := f.seen, f.gen
	f.stack = append(f.stack, int32(y*w+x))
	for len(f.stack) > 0 {
		i := int(f.stack[len(f.stack)-1])
		f.stack = f.stack[:len(f.stack)-1]
		if seen[i] == gen {
			continue
		}
		row := i / w
		base := row * w
		x0, x1 := i-base, i-base+1
		seen[i] = gen
		for x0 > 0 && seen[base+x0-1] != gen && in(base+x0-1) {
			x0--
			seen[base+x0] = gen
		}
		for x1 < w && seen[base+x1] != gen && in(base+x1) {
			seen[base+x1] = gen
			x1++
		}
		dst = append(dst, Span{int32(row), int32(x0), int32(x1)})
		lo, hi := x0, x1
		if conn8 {
			lo, hi = max(0, x0-1), min(w, x1+1)
		}
		for _, ny := range [2]int{row - 1, row + 1} {
			if ny < 0 || ny >= h {
				continue
			}
			nb := ny * w
			run := false
			for nx := lo; nx < hi; nx++ {
				j := nb + nx
				if seen[j] != gen && in(j) {
					if !run {
						f.stack = append(f.stack, int32(j))
						run = true
					}
				} else {
					run = false
				}
			}
		}
	}
	return dst
}
