package metrics

import (
	"fmt"
	"math"
)

// prepared is an image after validation and connected-component labelling.
type prepared struct {
	img      *Image
	score    float64 // image score
	maxScore float64 // max of the map
	defects  int64   // defect pixels
	// areas[r] is the size of local region r; regions are numbered in raster order of their first pixel.
	areas []int64
	// defLabels[k] is the local cell of the k-th defect pixel in raster order: its region, or with
	// saturation regions (sPRO) its cell (see prepareParts).
	defLabels []int32
	// With saturation regions: cellRegion[c] is the region of cell c, cellParts[c] its saturation regions,
	// partSat the saturation area of each; nil without.
	cellRegion []int32
	cellParts  [][]int32
	partSat    []int64
	// segTP and segFP count the defect and normal pixels at or above the pixel threshold (when one is set).
	segTP, segFP int64
	// load, when set, reads the map and mask again (a streamed evaluation holds no pixels).
	load func() ([]float32, []bool, error)
	// counted is set when segTP and segFP were counted on the first read.
	counted bool
}

// pixels returns the image's float32 map and mask, from memory or read again.
func (p *prepared) pixels() ([]float32, []bool, error) {
	if p.load == nil {
		return p.img.Map, p.img.Mask, nil
	}
	return p.load()
}

// cells is the number of local cells of p.
func (p *prepared) cells() int {
	if p.cellRegion != nil {
		return len(p.cellRegion)
	}
	return len(p.areas)
}

// maxImagePixels keeps pixel indices of one image inside int32.
const maxImagePixels = math.MaxInt32

func prepare(img *Image, s *scratch) (*prepared, error) {
	if img.W <= 0 || img.H <= 0 || int64(img.W)*int64(img.H) > maxImagePixels {
		return nil, fmt.Errorf("image %q: size %dx%d is out of range", img.Key, img.W, img.H)
	}
	n := img.W * img.H
	if img.Map != nil && img.Map64 != nil {
		return nil, fmt.Errorf("image %q: both Map and Map64 are set; set exactly one", img.Key)
	}
	if img.Map == nil && img.Map64 == nil {
		return nil, fmt.Errorf("image %q: no map (neither Map nor Map64 is set)", img.Key)
	}
	if img.Map64 != nil && len(img.Map64) != n {
		return nil, fmt.Errorf("image %q: map has %d values, want %dx%d = %d", img.Key, len(img.Map64), img.W, img.H, n)
	}
	if img.Map64 == nil && len(img.Map) != n {
		return nil, fmt.Errorf("image %q: map has %d values, want %dx%d = %d", img.Key, len(img.Map), img.W, img.H, n)
	}
	if img.Mask != nil && len(img.Mask) != n {
		return nil, fmt.Errorf("image %q: mask has %d pixels, want %dx%d = %d", img.Key, len(img.Mask), img.W, img.H, n)
	}
	if img.Label != 0 && img.Label != 1 {
		return nil, fmt.Errorf("image %q: label %d, want 0 (good) or 1 (defect)", img.Key, img.Label)
	}
	p := &prepared{img: img}
	if img.Map64 != nil {
		mx := math.Inf(-1)
		for i, v := range img.Map64 {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("image %q: map value %v at pixel (%d, %d) is not finite", img.Key, v, i%img.W, i/img.W)
			}
			mx = max(mx, v)
		}
		p.maxScore = mx
	} else {
		mx := float32(math.Inf(-1))
		for i, v := range img.Map {
			// All exponent bits set: NaN or an infinity.
			if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
				return nil, fmt.Errorf("image %q: map value %v at pixel (%d, %d) is not finite", img.Key, v, i%img.W, i/img.W)
			}
			mx = max(mx, v)
		}
		p.maxScore = float64(mx)
	}
	p.score = p.maxScore
	if img.Score != nil {
		if math.IsNaN(*img.Score) || math.IsInf(*img.Score, 0) {
			return nil, fmt.Errorf("image %q: score %v is not finite", img.Key, *img.Score)
		}
		p.score = *img.Score
	}
	if img.Mask != nil {
		for _, d := range img.Mask {
			if d {
				p.defects++
			}
		}
	}
	if p.defects > 0 {
		p.areas, p.defLabels = components(img.Mask, img.W, img.H, p.defects, s)
	}
	if len(img.SatRegions) > 0 {
		if err := prepareParts(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// countAt counts the defect and normal pixels of p at or above thr.
func (p *prepared) countAt(thr float64) {
	img := p.img
	var tp, fp int64
	if img.Map64 != nil {
		for i, v := range img.Map64 {
			if v >= thr {
				if img.Mask != nil && img.Mask[i] {
					tp++
				} else {
					fp++
				}
			}
		}
	} else {
		for i, v := range img.Map {
			if float64(v) >= thr {
				if img.Mask != nil && img.Mask[i] {
					tp++
				} else {
					fp++
				}
			}
		}
	}
	p.segTP, p.segFP = tp, fp
}

// components labels the 8-connected components of mask (as the MVTec AD evaluation code does, with
// scipy.ndimage.label and a 3x3 structure) by flood fill: every pixel is pushed once, so it is linear.
func components(mask []bool, w, h int, defects int64, s *scratch) (areas []int64, defLabels []int32) {
	n := w * h
	if cap(s.labels) < n {
		s.labels = make([]int32, n)
	}
	labels := s.labels[:n]
	clear(labels)
	stack := s.stack[:0]
	for i, d := range mask {
		if !d || labels[i] != 0 {
			continue
		}
		r := int32(len(areas)) + 1
		labels[i] = r
		stack = append(stack, int32(i))
		var area int64
		for len(stack) > 0 {
			p := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			area++
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				yy := y + dy
				if yy < 0 || yy >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					xx := x + dx
					if xx < 0 || xx >= w {
						continue
					}
					q := yy*w + xx
					if mask[q] && labels[q] == 0 {
						labels[q] = r
						stack = append(stack, int32(q))
					}
				}
			}
		}
		areas = append(areas, area)
	}
	s.stack = stack
	defLabels = make([]int32, 0, defects)
	for i, d := range mask {
		if d {
			defLabels = append(defLabels, labels[i]-1)
		}
	}
	return areas, defLabels
}

// key maps a finite float32 to a uint32 whose unsigned order is the order of the values; -0 and +0 share
// one key because they are one score.
func key(v float32) uint32 {
	if v == 0 {
		v = 0
	}
	b := math.Float32bits(v)
	if b&0x80000000 != 0 {
		return ^b
	}
	return b | 0x80000000
}

// unkey inverts key.
func unkey(k uint32) float32 {
	if k&0x80000000 != 0 {
		return math.Float32frombits(k &^ 0x80000000)
	}
	return math.Float32frombits(^k)
}
