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
	// in[i]: pixel i is in the region and not yet taken by the current fill; valid for the rows y whose
	// rowGen[y] is gen (a row is tested the first time the fill reaches it).
	in     []bool
	rowGen []uint32
	gen    uint32
	stack  []int32
}

func (f *Filler) reset(w, h int) {
	if len(f.in) != w*h || len(f.rowGen) != h {
		f.in, f.rowGen = make([]bool, w*h), make([]uint32, h)
		f.gen = 0
	}
	f.gen++
	if f.gen == 0 {
		// The generation counter wrapped: old marks could collide with the new generation.
		clear(f.rowGen)
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
	pix, w := img.Pix, img.W
	// |d| <= tol as one unsigned comparison: d+tol in [0, 2 tol].
	span := uint(2 * tol)
	test := func(y int, out []bool) {
		row := pix[y*w*4 : (y+1)*w*4]
		for x := range out {
			o := x * 4
			r, g, b := row[o], row[o+1], row[o+2]
			out[x] = uint(int(r)-sr+tol) <= span && uint(int(g)-sg+tol) <= span && uint(int(b)-sb+tol) <= span
		}
	}
	return f.fill(img.W, img.H, x, y, false, test, dst), nil
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
	test := func(y int, out []bool) {
		for x, p := range pix[y*w : (y+1)*w] {
			out[x] = p == v
		}
	}
	return f.fill(w, h, x, y, true, test, dst), nil
}

// fill is a scanline flood fill: it extends each seed to a whole run of its row and seeds the rows above
// and below once per run, so it touches each pixel a small constant number of times. test fills in a
// row's membership the first time the fill reaches the row (one tight loop per row instead of a call per
// pixel visit, which is what the fill's time went to in the browser), and taking a pixel clears it.
func (f *Filler) fill(w, h, x, y int, conn8 bool, test func(y int, out []bool), dst []Span) []Span {
	f.reset(w, h)
	gen, in := f.gen, f.in
	row := func(y int) {
		if f.rowGen[y] != gen {
			test(y, in[y*w:(y+1)*w])
			f.rowGen[y] = gen
		}
	}
	row(y)
	f.stack = append(f.stack, int32(y*w+x))
	for len(f.stack) > 0 {
		i := int(f.stack[len(f.stack)-1])
		f.stack = f.stack[:len(f.stack)-1]
		if !in[i] {
			continue
		}
		r := i / w
		base := r * w
		x0, x1 := i-base, i-base+1
		in[i] = false
		for x0 > 0 && in[base+x0-1] {
			x0--
			in[base+x0] = false
		}
		for x1 < w && in[base+x1] {
			in[base+x1] = false
			x1++
		}
		dst = append(dst, Span{int32(r), int32(x0), int32(x1)})
		lo, hi := x0, x1
		if conn8 {
			lo, hi = max(0, x0-1), min(w, x1+1)
		}
		for _, ny := range [2]int{r - 1, r + 1} {
			if ny < 0 || ny >= h {
				continue
			}
			row(ny)
			nb := ny*w + lo
			run := false
			for k, v := range in[nb : nb+hi-lo] {
				if v && !run {
					f.stack = append(f.stack, int32(nb+k))
				}
				run = v
			}
		}
	}
	return dst
}
