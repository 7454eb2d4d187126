//go:build !js

package inference

import (
	"fmt"
	"image"
	"math"
	"sync"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/resample"
)

// Pre-processing without the per-pixel costs: the image's rows are read by imageio.RGBRows (direct loops
// for the decoders' common outputs) straight into the three float planes, through a table of v/255, and
// the planes come from a pool, so a 900x900 image costs no allocation proportional to its pixels beyond
// what the resize itself allocates. The result is bit for bit resample.Preprocess(imageio.RGB8(img)):
// the same float32 operations in the same order (preprocess_test.go compares them on every image type).

// unit holds float32(v) / 255 for every byte, the first step of resample.Preprocess.
var unit = func() (t [256]float32) {
	for v := range t {
		t[v] = float32(v) / 255
	}
	return t
}()

// planePool recycles the float planes (3 x w x h) of pre-processing, rowPool the packed RGB row.
var (
	planePool sync.Pool // *[]float32
	rowPool   sync.Pool // *[]uint8
)

func getFloats(n int) *[]float32 {
	if p, ok := planePool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func getBytes(n int) *[]uint8 {
	if p, ok := rowPool.Get().(*[]uint8); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]uint8, n)
	return &s
}

// preprocessInto writes the model input of img (3 x size x size, channel planes) into dst and returns
// the image's size. It equals resample.Preprocess(imageio.RGB8(img)) exactly, errors included.
func preprocessInto(dst []float32, img image.Image, size int, mean, std [3]float32) (w, h int, err error) {
	rows := imageio.NewRGBRows(img)
	w, h = rows.Size()
	if w < 1 || h < 1 || size < 1 {
		return w, h, fmt.Errorf("preprocess: bad sizes (image %dx%d, model %d)", w, h, size)
	}
	for c := 0; c < 3; c++ {
		if std[c] == 0 || math.IsNaN(float64(std[c])) {
			return w, h, fmt.Errorf("preprocess: std[%d] is %v", c, std[c])
		}
	}
	ss := size * size
	if len(dst) != 3*ss {
		return w, h, fmt.Errorf("preprocess: output holds %d values, want 3 x %d x %d", len(dst), size, size)
	}
	n := w * h
	pp := getFloats(3 * n)
	defer planePool.Put(pp)
	rp := getBytes(3 * w)
	defer rowPool.Put(rp)
	planes, row := *pp, *rp
	r, g, b := planes[:n:n], planes[n:2*n:2*n], planes[2*n:]
	for y := 0; y < h; y++ {
		rows.Row(y, row)
		o := y * w
		rr, gr, br := r[o:o+w:o+w], g[o:o+w:o+w], b[o:o+w:o+w]
		for x := range rr {
			px := row[3*x : 3*x+3 : 3*x+3]
			rr[x], gr[x], br[x] = unit[px[0]], unit[px[1]], unit[px[2]]
		}
	}
	out, err := resample.ResizeBilinearAA(planes, 3, w, h, size, size)
	if err != nil {
		return w, h, fmt.Errorf("preprocess: %w", err)
	}
	for c := 0; c < 3; c++ {
		m, s := mean[c], std[c]
		src, d := out[c*ss:(c+1)*ss], dst[c*ss:(c+1)*ss]
		for i, v := range src {
			d[i] = (v - m) / s
		}
	}
	return w, h, nil
}
