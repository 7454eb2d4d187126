package metrics

import (
	"errors"
	"fmt"
	"math"
	"sync"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// Accumulator evaluates a job incrementally as its maps arrive. Add validates and labels each image at
// once (so a bad map fails the job when it arrives, not at the end) and bins its pixels by the top 16 bits
// of their score; Partial sweeps those 65536 bins, which costs the same whatever the job's size and gives
// pixel metrics within the resolution of the bins (labelled Estimate). Final is exact and equals Compute on
// the same images in any order.
//
// Images with a float64 map (Map64) are accepted: Final ranks them at full precision as Compute does (see
// the package doc), and Partial bins them like float32 maps, their values rounded to float32 and clamped to
// its finite range, so that an estimate never carries an infinite threshold.
//
// The accumulator keeps the images' maps and masks by reference: callers must not modify them after Add.
type Accumulator struct {
	opt  Options
	oerr error
	pool sync.Pool

	mu      sync.Mutex
	preps   []*prepared
	keys    map[string]bool
	pixels  int64
	binN    []int64
	binD    []int64
	binPro  []kahan // sum of 1/area over the defect pixels of the bin
	regions int64
}

// NewAccumulator starts an incremental evaluation. Invalid options are reported by Add and Final.
func NewAccumulator(opt Options) *Accumulator {
	o, err := opt.normalized()
	return &Accumulator{
		opt: o, oerr: err, keys: map[string]bool{},
		binN: make([]int64, nBuckets), binD: make([]int64, nBuckets), binPro: make([]kahan, nBuckets),
		pool: sync.Pool{New: func() any { return &scratch{} }},
	}
}

// Add enters one image. It is safe for concurrent use.
func (a *Accumulator) Add(img Image) error {
	if a.oerr != nil {
		return a.oerr
	}
	im := img
	s := a.pool.Get().(*scratch)
	p, err := prepare(&im, s)
	a.pool.Put(s)
	if err != nil {
		return err
	}
	// Bin indices are computed outside the lock; the locked part is one increment per pixel.
	var bins []uint16
	if im.Map64 != nil {
		bins = make([]uint16, len(im.Map64))
		for i, v := range im.Map64 {
			bins[i] = uint16(key(float32(max(-math.MaxFloat32, min(v, math.MaxFloat32)))) >> bucketBits)
		}
	} else {
		bins = make([]uint16, len(im.Map))
		for i, v := range im.Map {
			bins[i] = uint16(key(v) >> bucketBits)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys[im.Key] {
		return fmt.Errorf("image %q: added twice", im.Key)
	}
	if a.pixels+int64(len(bins)) > MaxPixels {
		return fmt.Errorf("image %q: the evaluation would exceed %d pixels", im.Key, int64(MaxPixels))
	}
	a.keys[im.Key] = true
	a.pixels += int64(len(bins))
	a.preps = append(a.preps, p)
	a.regions += int64(len(p.areas))
	k := 0
	for i, b := range bins {
		if im.Mask != nil && im.Mask[i] {
			a.binD[b]++
			a.binPro[b].add(1 / float64(p.areas[p.defLabels[k]]))
			k++
		} else {
			a.binN[b]++
		}
	}
	return nil
}

// Len returns the number of images added so far.
func (a *Accumulator) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.preps)
}

// Partial returns the metrics of the images added so far: image metrics exact, pixel metrics estimated
// from the score bins (thresholds are the lower edges of the bins). Counts are exact except
// DistinctPixelScores, which counts non-empty bins.
func (a *Accumulator) Partial() *sm.Result {
	a.mu.Lock()
	preps := append([]*prepared(nil), a.preps...)
	binN := append([]int64(nil), a.binN...)
	binD := append([]int64(nil), a.binD...)
	binPro := append([]kahan(nil), a.binPro...)
	R := a.regions
	a.mu.Unlock()

	res := &sm.Result{Partial: true, Estimate: true, FPRLimit: a.opt.FPRLimit, Warnings: []string{}}
	if len(preps) == 0 {
		res.Warnings = append(res.Warnings, "no images yet")
		return res
	}
	var w warnings
	img := imageSweep(preps)
	res.ImageAUROC = w.check(img.auroc(), "image_auroc", img.undefinedAUROC("images"))
	res.ImageAP = w.check(img.ap(), "image_ap", img.undefinedAP("images"))
	res.ImageF1Max, res.ImageF1MaxThreshold = img.f1()
	var P, N int64
	for b := range binN {
		P += binD[b]
		N += binN[b]
	}
	lims, primary := a.opt.limits()
	px := newSweep(P, N, trackCounts{R: R}, sweepConfig{lims: lims, primary: primary}, true)
	for b := nBuckets - 1; b >= 0; b-- {
		if binN[b]+binD[b] > 0 {
			px.stepPro(float64(unkey(uint32(b)<<bucketBits)), binD[b], binN[b], binPro[b])
		}
	}
	px.finish()
	setPixelMetrics(res, &w, px)
	c := &res.Counts
	countImages(c, preps)
	c.Pixels, c.AnomalousPixels, c.NormalPixels, c.Regions, c.DistinctPixelScores = P+N, P, N, R, px.distinct
	res.Curves = &sm.Curves{PixelROC: px.roc.curve(), PixelPR: px.pr.curve(), PixelPRO: px.proCurve.curve(), ImageROC: img.roc.curve()}
	res.Warnings = w.list
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	return res
}

// Final returns the exact metrics of all images added.
func (a *Accumulator) Final() (*sm.Result, error) {
	if a.oerr != nil {
		return nil, a.oerr
	}
	a.mu.Lock()
	preps := append([]*prepared(nil), a.preps...)
	a.mu.Unlock()
	if len(preps) == 0 {
		return nil, errors.New("evaluate: no images")
	}
	return computePrepared(preps, a.opt)
}
