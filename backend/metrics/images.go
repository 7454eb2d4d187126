package metrics

import (
	"cmp"
	"slices"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// imageSweep sweeps the image scores.
func imageSweep(preps []*prepared, lim float64) *sweep {
	type sl struct {
		score float64
		label int
	}
	xs := make([]sl, len(preps))
	var P, N int64
	for i, p := range preps {
		xs[i] = sl{p.score, p.img.Label}
		if p.img.Label == 1 {
			P++
		} else {
			N++
		}
	}
	slices.SortStableFunc(xs, func(a, b sl) int { return cmp.Compare(b.score, a.score) })
	s := newSweep(P, N, 0, lim, true)
	for i := 0; i < len(xs); {
		thr := xs[i].score
		var dtp, dfp int64
		for ; i < len(xs) && xs[i].score == thr; i++ {
			if xs[i].label == 1 {
				dtp++
			} else {
				dfp++
			}
		}
		s.step(thr, dtp, dfp, kahan{})
	}
	s.finish()
	return s
}

// detail builds the per-image row: the image's own pixel AP and how much of each region reaches thr.
func detail(p *prepared, thr float64, s *scratch) sm.ImageDetail {
	img := p.img
	d := sm.ImageDetail{
		Key: img.Key, Kind: img.Kind, Label: img.Label, Score: p.score, MaxScore: p.maxScore,
		DefectPixels: p.defects, Regions: []sm.RegionDetail{},
	}
	covered := make([]int64, len(p.areas))
	k := 0
	for i, v := range img.Map {
		hit := float64(v) >= thr
		if img.Mask != nil && img.Mask[i] {
			if hit {
				covered[p.defLabels[k]]++
			}
			k++
		} else if hit {
			d.FalsePositives++
		}
	}
	for r, a := range p.areas {
		d.Regions = append(d.Regions, sm.RegionDetail{Area: a, Covered: float64(covered[r]) / float64(a)})
	}
	if p.defects == 0 {
		return d
	}
	// The image's own sweep, by the same sort and sweep as the whole set.
	inv := make([]float64, len(p.areas))
	for r, a := range p.areas {
		inv[r] = 1 / float64(a)
	}
	st := sortPixels([]*prepared{p}, []int64{0}, 1)
	d.PixelAP = sweepSet(st, inv, DefaultFPRLimit, false).ap()
	return d
}
