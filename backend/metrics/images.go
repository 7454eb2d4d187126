package metrics

import (
	"cmp"
	"slices"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// imageSweep sweeps the image scores.
func imageSweep(preps []*prepared) *sweep {
	recs := make([]imageRecord, len(preps))
	for i, p := range preps {
		recs[i] = recordOf(p)
	}
	return imageSweepRecords(recs)
}

// imageSweepRecords sweeps the image scores of recs (in key order).
func imageSweepRecords(recs []imageRecord) *sweep {
	type sl struct {
		score float64
		label int
	}
	xs := make([]sl, len(recs))
	var P, N int64
	for i, p := range recs {
		xs[i] = sl{p.score, p.label}
		if p.label == 1 {
			P++
		} else {
			N++
		}
	}
	slices.SortStableFunc(xs, func(a, b sl) int { return cmp.Compare(b.score, a.score) })
	s := newSweep(P, N, trackCounts{}, sweepConfig{}, true)
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
		s.step(thr, dtp, dfp)
	}
	s.finish()
	return s
}

// detail builds the per-image row: the image's own pixel AP and how much of each region reaches thr.
func detail(p *prepared, thr float64) (sm.ImageDetail, error) {
	img := p.img
	mp, mask, err := p.pixels()
	if err != nil {
		return sm.ImageDetail{}, err
	}
	if p.load != nil {
		// Read once for both uses below.
		q := *p
		im := *p.img
		im.Map, im.Mask = mp, mask
		q.img, q.load = &im, nil
		p = &q
	}
	d := sm.ImageDetail{
		Key: img.Key, Kind: img.Kind, Label: img.Label, Score: p.score, MaxScore: p.maxScore,
		DefectPixels: p.defects, Regions: []sm.RegionDetail{},
	}
	covered := make([]int64, len(p.areas))
	k := 0
	for i, v := range mp {
		hit := float64(v) >= thr
		if mask != nil && mask[i] {
			if hit {
				r := p.defLabels[k]
				if p.cellRegion != nil {
					r = p.cellRegion[r]
				}
				covered[r]++
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
		return d, nil
	}
	d.PixelAP, err = ownAP(p)
	return d, err
}

// ownAP is the pixel AP of the image's own pixels, by the same sort and sweep as the whole set.
func ownAP(p *prepared) (*float64, error) {
	geo, _ := buildGeometry([]*prepared{p})
	st, err := sortPixels([]*prepared{p}, []int64{0}, 1)
	if err != nil {
		return nil, err
	}
	return sweepSet(st, sweepConfig{geo: geo}, false).ap(), nil
}
