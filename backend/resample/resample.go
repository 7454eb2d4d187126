// Package resample holds the image resizing and normalisation that must agree with the PyTorch side of
// the model exactly: the antialiased bilinear resize of the pre-processing, the plain bilinear resize that
// brings a model map back to its image's resolution, and the normalisation. Plain Go, no cgo, so the
// workspace store and the browser can use it too.
package resample

import (
	"fmt"
	"math"
)

// The resize code follows PyTorch's CPU kernels (ATen UpSampleKernel.cpp, torch 1.13) operation by
// operation in float32, so the Go tensors agree with the Python ones to float rounding, not just
// "visually": the model was trained on exactly these pixels.

// aaAxis holds, for each output index along one axis, the first input index and the normalised
// weights of the antialiasing triangle filter.
type aaAxis struct {
	start []int
	w     [][]float32
}

// newAAAxis computes PyTorch's _compute_indices_weights_aa for interp_size 2 (bilinear) with
// align_corners=False: the triangle filter is stretched by the downscale factor so every input pixel
// contributes (PIL's convention); when upscaling it is plain bilinear with edge renormalisation.
func newAAAxis(in, out int) aaAxis {
	scale := float32(in) / float32(out)
	support := float32(1)
	invscale := float32(1)
	if scale >= 1 {
		support = scale
		invscale = 1 / scale
	}
	ax := aaAxis{start: make([]int, out), w: make([][]float32, out)}
	for i := 0; i < out; i++ {
		center := scale * (float32(i) + 0.5)
		xmin := int(center - support + 0.5) // C++ truncation toward zero, then clamped
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > in {
			xmax = in
		}
		n := xmax - xmin
		if n < 1 {
			// Cannot happen for in, out >= 1, but an empty window must not index out of range.
			xmin, n = min(max(int(center), 0), in-1), 1
		}
		w := make([]float32, n)
		var total float32
		for j := 0; j < n; j++ {
			x := float32((float64(j+xmin) - float64(center) + 0.5) * float64(invscale))
			if x < 0 {
				x = -x
			}
			if x < 1 {
				w[j] = 1 - x
			}
			total += w[j]
		}
		if total != 0 {
			for j := range w {
				w[j] /= total
			}
		}
		ax.start[i], ax.w[i] = xmin, w
	}
	return ax
}

// ResizeBilinearAA resizes planes (c planes of sw x sh, row-major, one after the other) to dw x dh like
// torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True): width first,
// then height, as PyTorch's separable kernel does.
func ResizeBilinearAA(src []float32, c, sw, sh, dw, dh int) ([]float32, error) {
	if err := checkResize(len(src), c, sw, sh, dw, dh); err != nil {
		return nil, err
	}
	hx := newAAAxis(sw, dw)
	vy := newAAAxis(sh, dh)
	tmp := make([]float32, c*sh*dw)
	for p := 0; p < c*sh; p++ {
		row := src[p*sw : (p+1)*sw]
		outRow := tmp[p*dw : (p+1)*dw]
		for x := 0; x < dw; x++ {
			w := hx.w[x]
			in := row[hx.start[x]:]
			t := in[0] * w[0]
			for j := 1; j < len(w); j++ {
				t += in[j] * w[j]
			}
			outRow[x] = t
		}
	}
	dst := make([]float32, c*dh*dw)
	for ch := 0; ch < c; ch++ {
		plane := tmp[ch*sh*dw : (ch+1)*sh*dw]
		outPlane := dst[ch*dh*dw : (ch+1)*dh*dw]
		for y := 0; y < dh; y++ {
			w := vy.w[y]
			y0 := vy.start[y]
			out := outPlane[y*dw : (y+1)*dw]
			r0 := plane[y0*dw : (y0+1)*dw]
			for x := range out {
				out[x] = r0[x] * w[0]
			}
			for j := 1; j < len(w); j++ {
				r := plane[(y0+j)*dw : (y0+j+1)*dw]
				wj := w[j]
				for x := range out {
					out[x] += r[x] * wj
				}
			}
		}
	}
	return dst, nil
}

// linAxis is one axis of PyTorch's plain bilinear resize: two source indices and their weights.
type linAxis struct {
	i0, i1 []int
	l0, l1 []float32
}

// newLinAxis follows area_pixel_compute_source_index (align_corners=False: src = scale*(i+0.5)-0.5,
// clamped at 0) and guard_index_and_lambda.
func newLinAxis(in, out int) linAxis {
	scale := float32(in) / float32(out)
	ax := linAxis{i0: make([]int, out), i1: make([]int, out), l0: make([]float32, out), l1: make([]float32, out)}
	for i := 0; i < out; i++ {
		real := scale*(float32(i)+0.5) - 0.5
		if real < 0 {
			real = 0
		}
		idx := int(math.Floor(float64(real)))
		if idx > in-1 {
			idx = in - 1
		}
		lam := real - float32(idx)
		lam = min(max(lam, 0), 1)
		ax.i0[i] = idx
		ax.i1[i] = idx
		if idx < in-1 {
			ax.i1[i] = idx + 1
		}
		ax.l1[i] = lam
		ax.l0[i] = 1 - lam
	}
	return ax
}

// ResizeBilinear resizes c planes of sw x sh to dw x dh like torch.nn.functional.interpolate(
// mode="bilinear", align_corners=False) without antialias: the post-processing that brings a model map
// back to the image's own resolution.
func ResizeBilinear(src []float32, c, sw, sh, dw, dh int) ([]float32, error) {
	if err := checkResize(len(src), c, sw, sh, dw, dh); err != nil {
		return nil, err
	}
	ax := newLinAxis(sw, dw)
	ay := newLinAxis(sh, dh)
	dst := make([]float32, c*dw*dh)
	// Separable: each source row that an output row uses is interpolated along x once (the inner
	// bracket of PyTorch's expression, rounded to float32 as there), then every output row blends two
	// of those rows. Upsampling a 256 map to 900 rows thus reads each source row once instead of on
	// every output row, with the same float32 operations in the same order as the direct formula.
	used := make([]bool, sh)
	for y := 0; y < dh; y++ {
		used[ay.i0[y]], used[ay.i1[y]] = true, true
	}
	rowsX := make([]float32, sh*dw)
	for ch := 0; ch < c; ch++ {
		plane := src[ch*sw*sh : (ch+1)*sw*sh]
		for r := 0; r < sh; r++ {
			if !used[r] {
				continue
			}
			in := plane[r*sw : (r+1)*sw]
			o := rowsX[r*dw : (r+1)*dw]
			i0, i1, l0, l1 := ax.i0[:len(o)], ax.i1[:len(o)], ax.l0[:len(o)], ax.l1[:len(o)]
			for x := range o {
				o[x] = float32(l0[x]*in[i0[x]]) + float32(l1[x]*in[i1[x]])
			}
		}
		out := dst[ch*dw*dh : (ch+1)*dw*dh]
		for y := 0; y < dh; y++ {
			a := rowsX[ay.i0[y]*dw : (ay.i0[y]+1)*dw]
			b := rowsX[ay.i1[y]*dw : (ay.i1[y]+1)*dw]
			h0, h1 := ay.l0[y], ay.l1[y]
			o := out[y*dw : (y+1)*dw]
			a, b = a[:len(o)], b[:len(o)] // lets the compiler drop the bounds checks below
			for x := range o {
				o[x] = float32(h0*a[x]) + float32(h1*b[x])
			}
		}
	}
	return dst, nil
}

func checkResize(n, c, sw, sh, dw, dh int) error {
	if c < 1 || sw < 1 || sh < 1 || dw < 1 || dh < 1 {
		return fmt.Errorf("resize: sizes must be positive (channels %d, %dx%d -> %dx%d)", c, sw, sh, dw, dh)
	}
	if n != c*sw*sh {
		return fmt.Errorf("resize: %d values given for %d planes of %dx%d", n, c, sw, sh)
	}
	return nil
}

// Preprocess turns packed 8-bit RGB (w x h, as imageio.RGB8 returns it) into the model's input tensor
// 3 x size x size: /255, antialiased bilinear resize, then (x-mean)/std per channel, in that order,
// exactly as models/ does it in PyTorch.
func Preprocess(pix []uint8, w, h, size int, mean, std [3]float32) ([]float32, error) {
	if w < 1 || h < 1 || size < 1 {
		return nil, fmt.Errorf("preprocess: bad sizes (image %dx%d, model %d)", w, h, size)
	}
	if len(pix) != 3*w*h {
		return nil, fmt.Errorf("preprocess: %d bytes given for a %dx%d RGB image", len(pix), w, h)
	}
	for c := 0; c < 3; c++ {
		if std[c] == 0 || math.IsNaN(float64(std[c])) {
			return nil, fmt.Errorf("preprocess: std[%d] is %v", c, std[c])
		}
	}
	planes := make([]float32, 3*w*h)
	n := w * h
	for i := 0; i < n; i++ {
		planes[i] = float32(pix[3*i]) / 255
		planes[n+i] = float32(pix[3*i+1]) / 255
		planes[2*n+i] = float32(pix[3*i+2]) / 255
	}
	out, err := ResizeBilinearAA(planes, 3, w, h, size, size)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	ss := size * size
	for c := 0; c < 3; c++ {
		m, s := mean[c], std[c]
		p := out[c*ss : (c+1)*ss]
		for i, v := range p {
			p[i] = (v - m) / s
		}
	}
	return out, nil
}

// MapToImage resizes a model-resolution map (s x s) to an image of w x h: the post-processing of every
// anomaly map, so a map cached at the model's resolution reproduces the full-resolution one exactly.
func MapToImage(raw []float32, s, w, h int) ([]float32, error) {
	return ResizeBilinear(raw, 1, s, s, w, h)
}
