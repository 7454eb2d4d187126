package metrics

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// The FPR limits every result reports in PixelAUPROByLimit, whatever else is asked for: MVTec AD 2's
// headline limit and MVTec AD's.
var alwaysLimits = []float64{0.05, DefaultFPRLimit}

// limitName is the key of a limit in a ByLimit map: its shortest decimal form ("0.05", "0.3", "1").
func limitName(l float64) string { return strconv.FormatFloat(l, 'f', -1, 64) }

// ParseLimits reads a comma-separated list of FPR limits ("0.3,0.05"), each in (0, 1]; the first is the
// primary one (PixelAUPRO, the PRO curve).
func ParseLimits(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitComma(s) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0 && v <= 1) {
			return nil, fmt.Errorf("fpr limit %q: want a number in (0, 1]", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("fpr limit %q: no limit", s)
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			f := s[start:i]
			for len(f) > 0 && f[0] == ' ' {
				f = f[1:]
			}
			for len(f) > 0 && f[len(f)-1] == ' ' {
				f = f[:len(f)-1]
			}
			if f != "" {
				out = append(out, f)
			}
			start = i + 1
		}
	}
	return out
}

// limits returns the reported limits, ascending, and the index of the primary one.
func (o Options) limits() ([]float64, int) {
	all := append(slices.Clone(alwaysLimits), o.FPRLimit)
	all = append(all, o.FPRLimits...)
	slices.Sort(all)
	all = slices.Compact(all)
	return all, slices.Index(all, o.FPRLimit)
}

// Region sizes: a region's area as a share of its image's area.
const (
	sizeSmall  = 0 // share < 0.1 %
	sizeMedium = 1 // 0.1 % <= share <= 1 %
	sizeLarge  = 2 // share > 1 %
)

var sizeNames = [3]string{"small", "medium", "large"}
var sizeBounds = [3][2]float64{{0, 0.001}, {0.001, 0.01}, {0.01, 1}}

// sizeClass decides a region's class exactly, in integers.
func sizeClass(area, imagePixels int64) uint8 {
	switch {
	case area*1000 < imagePixels:
		return sizeSmall
	case area*100 > imagePixels:
		return sizeLarge
	}
	return sizeMedium
}

// SatRegion is one saturation region of sPRO, as MVTec LOCO AD defines it: one ground-truth mask file,
// one region even when its pixels are not connected. Its overlap at a threshold is min(1, covered pixels /
// Saturation); Saturation is clamped to [1, area] (LOCO's absolute thresholds are capped at the area; a
// relative one is floor(fraction * area), at least 1 here where LOCO's own code would divide by zero).
type SatRegion struct {
	Mask       []bool // row-major W*H, true = in the region; every such pixel must be a defect pixel of Mask
	Saturation int64
	// Name is the defect name the saturation came from (for messages only).
	Name string
}

// maxPartsPerImage bounds the saturation regions of one image (a pixel's regions are a 64-bit set).
const maxPartsPerImage = 64

// prepareParts splits the defect pixels of p into cells: pixels of one 8-connected region that lie in the
// same set of saturation regions. defLabels then holds the local cell of each defect pixel; cells are
// numbered in raster order of their first pixel.
func prepareParts(p *prepared) error {
	img := p.img
	parts := img.SatRegions
	if len(parts) > maxPartsPerImage {
		return fmt.Errorf("image %q: %d saturation regions, at most %d per image", img.Key, len(parts), maxPartsPerImage)
	}
	n := img.W * img.H
	p.partSat = make([]int64, len(parts))
	for j, part := range parts {
		if len(part.Mask) != n {
			return fmt.Errorf("image %q: saturation region %d has %d pixels, want %dx%d = %d", img.Key, j, len(part.Mask), img.W, img.H, n)
		}
		var area int64
		for i, v := range part.Mask {
			if v {
				if img.Mask == nil || !img.Mask[i] {
					return fmt.Errorf("image %q: saturation region %d has pixel (%d, %d), which is not a defect pixel of the mask", img.Key, j, i%img.W, i/img.W)
				}
				area++
			}
		}
		if area == 0 {
			return fmt.Errorf("image %q: saturation region %d (%s) is empty", img.Key, j, part.Name)
		}
		p.partSat[j] = min(max(part.Saturation, 1), area)
	}
	type cellKey struct {
		region int32
		set    uint64
	}
	ids := map[cellKey]int32{}
	k := 0
	for i, d := range img.Mask {
		if !d {
			continue
		}
		var set uint64
		for j, part := range parts {
			if part.Mask[i] {
				set |= 1 << uint(j)
			}
		}
		key := cellKey{p.defLabels[k], set}
		c, ok := ids[key]
		if !ok {
			c = int32(len(p.cellRegion))
			ids[key] = c
			p.cellRegion = append(p.cellRegion, key.region)
			var list []int32
			for b := set; b != 0; b &= b - 1 {
				list = append(list, int32(bits.TrailingZeros64(b)))
			}
			p.cellParts = append(p.cellParts, list)
		}
		p.defLabels[k] = c
		k++
	}
	return nil
}

// geometry holds the cells, regions and saturation regions of an evaluation under global ids, numbered in
// key order of the images.
type geometry struct {
	cellRegion []int32   // cell -> region; nil when cells are the regions
	inv        []float64 // region -> 1 / area
	size       []uint8   // region -> size class
	partStart  []int32   // cell -> its saturation regions partIdx[partStart[c]:partStart[c+1]]; nil without sPRO
	partIdx    []int32
	sat        []int64 // saturation region -> saturation area
}

// buildGeometry numbers the cells, regions and saturation regions of preps (in key order) and returns the
// global id of the first cell of each image.
func buildGeometry(preps []*prepared) (*geometry, []int64) {
	g := &geometry{}
	cellOff := make([]int64, len(preps))
	var cells, regions, parts int64
	anyParts := false
	for _, p := range preps {
		if p.cellRegion != nil {
			anyParts = true
		}
	}
	for i, p := range preps {
		cellOff[i] = cells
		npx := int64(p.img.W) * int64(p.img.H)
		for _, a := range p.areas {
			g.inv = append(g.inv, 1/float64(a))
			g.size = append(g.size, sizeClass(a, npx))
		}
		if anyParts {
			if p.cellRegion == nil {
				// No saturation regions in this image: one cell per region, in no saturation region.
				for r := range p.areas {
					g.cellRegion = append(g.cellRegion, int32(regions)+int32(r))
					g.partStart = append(g.partStart, int32(len(g.partIdx)))
				}
			} else {
				for c, r := range p.cellRegion {
					g.cellRegion = append(g.cellRegion, int32(regions)+r)
					g.partStart = append(g.partStart, int32(len(g.partIdx)))
					for _, q := range p.cellParts[c] {
						g.partIdx = append(g.partIdx, int32(parts)+q)
					}
				}
			}
			g.sat = append(g.sat, p.partSat...)
		}
		cells += int64(p.cells())
		regions += int64(len(p.areas))
		parts += int64(len(p.partSat))
	}
	if anyParts {
		g.partStart = append(g.partStart, int32(len(g.partIdx)))
	}
	return g, cellOff
}

// counts returns the track counts of preps.
func trackCountsOf(preps []*prepared) trackCounts {
	var tc trackCounts
	for _, p := range preps {
		tc.R += int64(len(p.areas))
		npx := int64(p.img.W) * int64(p.img.H)
		for _, a := range p.areas {
			tc.sizes[sizeClass(a, npx)]++
		}
		tc.parts += int64(len(p.partSat))
	}
	return tc
}

func (tc trackCounts) plus(o trackCounts) trackCounts {
	tc.R += o.R
	tc.parts += o.parts
	for i := range tc.sizes {
		tc.sizes[i] += o.sizes[i]
	}
	return tc
}

// sizeResults builds the per-size table from the overall sweep.
func sizeResults(px *sweep) []sm.SizeResult {
	if px.sizeBase < 0 {
		return nil
	}
	out := make([]sm.SizeResult, 3)
	for c := range 3 {
		t := px.sizeBase + c
		out[c] = sm.SizeResult{Size: sizeNames[c], MinShare: sizeBounds[c][0], MaxShare: sizeBounds[c][1],
			Regions: px.tr[t].R, PixelAUPRO: px.trackAU(t, px.primary), PixelAUPROByLimit: px.trackByLimit(t)}
		if px.probeOn {
			out[c].PROAtThreshold = sm.Known(px.atProbe(t))
		}
	}
	return out
}
