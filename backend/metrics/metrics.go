// Package metrics computes the evaluation metrics of anomaly maps against ground-truth masks, exactly as the
// MVTec AD evaluation code defines them, fast enough to run on every job.
//
// Contract:
//   - image AUROC, AP (step-wise, as sklearn's average_precision_score) and F1-max over image scores; the
//     image label is Image.Label (0 good, 1 defect); the score is Image.Score or, when nil, the map's max
//     (in float64 for a Map64);
//   - pixel AUROC, pixel AP and pixel F1-max over all pixels of all images;
//   - AUPRO: regions are the 8-connected components of each mask; at every distinct score (ties enter
//     together) PRO is the mean covered fraction over all regions of all images and FPR is false positives
//     over all normal pixels of all images; the area under PRO(FPR) from 0 to the FPR limit by trapezoids, the
//     last one cut at the limit by linear interpolation, divided by the limit;
//   - AUPRO at several limits in the one sweep (Options.FPRLimits; 0.05 and 0.3 always): the area grows from
//     the lowest limit to the highest and each limit takes the area so far plus the segment cut at it;
//   - with a pixel threshold (Options.Threshold): SegF1 over all pixels at once, the mean of per-image F1 over
//     the images with a defect pixel or a prediction, and PRO at the threshold, taken in the same sweep
//     without changing how its sums are accumulated;
//   - with Detail: PRO and AUPRO per region size (share of the image: < 0.1 %, 0.1 % to 1 %, > 1 %), each
//     size its own track over the same FPR axis;
//   - with saturation regions (Image.SatRegions, MVTec LOCO): sPRO and AU-sPRO, each region's overlap
//     min(1, covered / saturation), pooled, by kind and the mean over kinds;
//   - thresholds: anomalous iff score >= threshold; F1-max reports the lowest threshold reaching the maximum;
//   - an undefined metric is nil with a warning, never NaN or 0;
//   - results do not depend on the order of the images: Compute orders them by Key first, and every sum
//     runs in one fixed order with integer counts and compensated float64 accumulation.
//
// Per kind (KindResult): each defect kind is evaluated over the normal images plus the images of that kind,
// as the per-class tables of papers do; Options.NoPerKind skips it.
//
// Method: a bucket pass over the float32 bits of all pixel scores (top 16 bits, 65536 buckets), a radix
// sort on the low 16 bits inside each bucket, and one sweep from the highest score down that yields ROC,
// PR and PRO together. Groups of normal pixels that change nothing but the FP count (most of a real map)
// are only counted, and the run they form enters the sums in one product, so the sweep costs little more
// than a scan. With per-kind metrics, pixels are sorted once per source (the normal images, each kind) and
// the sweeps run on stable merges of their sources. Preparation (validation, 8-connected components by
// flood fill), the bucket passes, the per-bucket sorts and the per-kind sweeps run on Options.Workers
// goroutines. Working memory: 4 bytes per normal pixel and 8 per defect pixel for the sort, plus merged
// copies while per-kind sweeps run.
//
// Precision: an image carries a float32 map (Image.Map) or a float64 one (Image.Map64), and pixels are ranked
// at the precision of the maps themselves. While every image of an evaluation has a float32 map the engine
// sorts their bits directly, as above. When any image has a Map64, every pixel value of every image (float32
// ones converted exactly) is first replaced by a float32 code of its rank among the evaluation's distinct
// values, in the same order, so ties stay ties, float64 values that round to one float32 stay apart, and
// values beyond the float32 range are ranked too; the engine runs on the codes and every pixel threshold of
// the result (F1-max, curves) is translated back to the original float64 value. That path costs one radix
// sort of all pixel values and a lookup per pixel (3 to 4 times the time of the float32 path on nearly
// distinct scores), 16 more bytes per pixel while the values are ranked and up to 14 after (8 for the
// distinct values, 2 for their index, 4 for the codes), and ranks at most MaxDistinct64 distinct values. The
// Accumulator accepts Map64 images too: Final is exact as Compute is; Partial bins them at float32 resolution
// like every estimate.
//
// Exact state (State, state.go): the result is a function of per-source histograms over the distinct pixel
// values with per-cell defect counts; every group of tied scores enters the sweep by ascending cell, in
// Compute as in State.Result, so states of disjoint sets merge (Merge) into the bit-identical result of the
// whole. Builder makes a state image by image in memory that does not grow with the pixels when the values
// are few; ComputeStream sorts without holding the maps (read again for the sort). docs/metrics.md has the
// definitions for users.
//
// The package is pure Go and builds for wasm.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// Image is one test image: its anomaly map and its ground truth.
type Image struct {
	Key   string // "KIND/NNN", unique within an evaluation
	Kind  string // defect kind (folder name); "good" for normal images
	Label int    // 0 good, 1 defect
	// Score is the image score; nil means the maximum of the map (Map or Map64).
	Score *float64
	W, H  int
	// Exactly one of Map and Map64 is set: row-major, W*H values, finite. A Map64 keeps the scores of a
	// float64 map apart where float32 would merge them, at the cost the package doc states.
	Map   []float32
	Map64 []float64
	Mask  []bool // row-major, W*H values, true = defect; nil = all normal
	// SatRegions are the regions of sPRO (MVTec LOCO AD: one per mask file); nil for none. With them the
	// result has AU-sPRO; regions of AUPRO stay the 8-connected components of Mask.
	SatRegions []SatRegion
}

// Options tune an evaluation. The zero value is the standard evaluation.
type Options struct {
	// FPRLimit is the upper integration limit of AUPRO (PixelAUPRO, the PRO curve), in (0, 1]; 0 means 0.3.
	FPRLimit float64
	// FPRLimits are more limits for PixelAUPROByLimit, which always has 0.05, 0.3 and FPRLimit. Every
	// limit is integrated in the one sweep.
	FPRLimits []float64
	// Threshold is the pixel threshold of SegF1 and PRO at the threshold (score >= threshold is
	// anomalous); nil: none, and those metrics are absent. ThresholdSource says where it came from.
	Threshold       *float64
	ThresholdSource string
	// ImageThreshold, with Threshold, adds image F1, TPR and FPR at it to Result.Threshold.
	ImageThreshold *float64
	// Detail adds the per-image table (per-image pixel AP and region coverage), which costs one more sort
	// of the pixels of defective images.
	Detail bool
	// NoPerKind skips the per-defect-kind metrics, which cost one more pass per kind over the normal images.
	NoPerKind bool
	// Workers bounds the parallelism; 0 means GOMAXPROCS.
	Workers int
	// SortBudget bounds, in bytes, the pixel sort of Compute and ComputeStream (4 bytes per normal pixel,
	// 8 per defect pixel, and the merged copies of the per-kind sweeps): beyond it the pixels are sorted
	// one range of scores at a time, reading the maps once more per range. 0: no bound, one pass. The
	// result does not depend on it. States (StateOf) are not bounded by it: a state holds every distinct
	// value.
	SortBudget int64
}

// DefaultFPRLimit is the AUPRO integration limit used by the MVTec AD benchmark.
const DefaultFPRLimit = 0.3

// MaxPixels bounds the total number of pixels of one evaluation, so that every count fits the packed keys.
const MaxPixels = 1 << 32

func (o Options) normalized() (Options, error) {
	if o.FPRLimit == 0 {
		o.FPRLimit = DefaultFPRLimit
	}
	if !(o.FPRLimit > 0 && o.FPRLimit <= 1) {
		return o, fmt.Errorf("fpr limit %v: must be in (0, 1]", o.FPRLimit)
	}
	for _, l := range o.FPRLimits {
		if !(l > 0 && l <= 1) {
			return o, fmt.Errorf("fpr limit %v: must be in (0, 1]", l)
		}
	}
	if o.Threshold != nil && (math.IsNaN(*o.Threshold) || math.IsInf(*o.Threshold, 0)) {
		return o, fmt.Errorf("threshold %v is not finite", *o.Threshold)
	}
	if o.ImageThreshold != nil && (math.IsNaN(*o.ImageThreshold) || math.IsInf(*o.ImageThreshold, 0)) {
		return o, fmt.Errorf("image threshold %v is not finite", *o.ImageThreshold)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o, nil
}

// Compute evaluates the images exactly.
func Compute(images []Image, opt Options) (*sm.Result, error) {
	opt, err := opt.normalized()
	if err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, errors.New("evaluate: no images")
	}
	ptrs := make([]*Image, len(images))
	for i := range images {
		ptrs[i] = &images[i]
	}
	return compute(ptrs, opt)
}

func compute(images []*Image, opt Options) (*sm.Result, error) {
	preps, err := prepareAll(images, opt)
	if err != nil {
		return nil, err
	}
	return computePrepared(preps, opt)
}

// prepareAll validates and labels images in parallel, refusing a set over MaxPixels first.
func prepareAll(images []*Image, opt Options) ([]*prepared, error) {
	var total int64
	for _, img := range images {
		total += int64(img.W) * int64(img.H)
	}
	if total > MaxPixels {
		return nil, fmt.Errorf("evaluate: %d pixels in all, more than the %d this engine handles", total, int64(MaxPixels))
	}
	preps := make([]*prepared, len(images))
	if err := parallel(len(images), opt.Workers, func(i int, s *scratch) error {
		p, err := prepare(images[i], s)
		preps[i] = p
		return err
	}); err != nil {
		return nil, err
	}
	return preps, nil
}

// ordered puts prepared images in key order (refusing a key given twice), counts them at the threshold
// when one is set, and ranks float64 maps into codes (nil when every map is float32): what both the
// result and the state are computed from.
func ordered(preps []*prepared, opt Options) ([]*prepared, *codeBook, error) {
	preps = slices.Clone(preps)
	slices.SortFunc(preps, func(a, b *prepared) int { return strings.Compare(a.img.Key, b.img.Key) })
	for i := 1; i < len(preps); i++ {
		if preps[i].img.Key == preps[i-1].img.Key {
			return nil, nil, fmt.Errorf("evaluate: duplicate image key %q", preps[i].img.Key)
		}
	}
	if opt.Threshold != nil {
		_ = parallel(len(preps), opt.Workers, func(i int, _ *scratch) error {
			if !preps[i].counted {
				preps[i].countAt(*opt.Threshold)
			}
			return nil
		})
	}
	for _, p := range preps {
		if p.img.Map64 != nil {
			return encode(preps, opt.Workers)
		}
	}
	return preps, nil, nil
}

// computePrepared evaluates validated images, in key order whatever order they come in.
func computePrepared(preps []*prepared, opt Options) (*sm.Result, error) {
	preps, codes, err := ordered(preps, opt)
	if err != nil {
		return nil, err
	}
	lims, primary := opt.limits()
	cfg := sweepConfig{lims: lims, primary: primary, sizes: opt.Detail}
	if opt.Threshold != nil {
		t := *opt.Threshold
		if codes != nil {
			t = codes.probe(t)
		}
		cfg.probe = &t
	}
	hasParts := slices.ContainsFunc(preps, func(p *prepared) bool { return p.partSat != nil })
	px, kindSweeps, err := pixelSweeps(preps, opt, cfg, !opt.NoPerKind || hasParts)
	if err != nil {
		return nil, err
	}
	res, err := assemble(preps, opt, px, kindSweeps, hasParts, func(thr float64, i int) (sm.ImageDetail, error) {
		return detail(preps[i], thr)
	})
	if err != nil {
		return nil, err
	}
	if codes != nil {
		codes.decodeResult(res)
	}
	return res, nil
}

// imageRecord is what the result needs of one image besides its pixels.
type imageRecord struct {
	key, kind    string
	label        int
	score        float64
	defects      int64
	segTP, segFP int64
}

func recordOf(p *prepared) imageRecord {
	return imageRecord{key: p.img.Key, kind: p.img.Kind, label: p.img.Label, score: p.score, defects: p.defects, segTP: p.segTP, segFP: p.segFP}
}

// assemble builds the result from the finished pixel sweeps and the image records (in key order);
// perImage gives the per-image row of image i at the pixel F1-max threshold (in the sweep's threshold
// space). The exact evaluation and the evaluation of a metric state share it.
func assemble(preps []*prepared, opt Options, px *sweep, kindSweeps map[string]*sweep, hasParts bool, perImage func(thr float64, i int) (sm.ImageDetail, error)) (*sm.Result, error) {
	recs := make([]imageRecord, len(preps))
	for i, p := range preps {
		recs[i] = recordOf(p)
	}
	res := &sm.Result{FPRLimit: opt.FPRLimit, Warnings: []string{}}
	var w warnings

	// Image-level metrics.
	img := imageSweepRecords(recs)
	res.ImageAUROC = w.check(img.auroc(), "image_auroc", img.undefinedAUROC("images"))
	res.ImageAP = w.check(img.ap(), "image_ap", img.undefinedAP("images"))
	f1, thr := img.f1()
	res.ImageF1Max = w.check(f1, "image_f1_max", img.undefinedAP("images"))
	res.ImageF1MaxThreshold = thr

	// Pixel-level metrics.
	thr = setPixelMetrics(res, &w, px)
	c := &res.Counts
	countRecords(c, recs)
	c.AnomalousPixels, c.NormalPixels = px.P, px.N
	c.Pixels = px.P + px.N
	c.Regions = px.tr[0].R
	c.DistinctPixelScores = px.distinct
	res.Curves = &sm.Curves{PixelROC: px.roc.curve(), PixelPR: px.pr.curve(), PixelPRO: px.proCurve.curve(), ImageROC: img.roc.curve()}

	if opt.Threshold != nil {
		setThresholdMetrics(res, &w, px, recs, opt)
	}
	if hasParts {
		setSPRO(res, &w, px, kindSweeps)
	}
	if !opt.NoPerKind {
		res.PerKind = perKind(recs, opt, kindSweeps)
	}
	if opt.Detail {
		res.PerSize = sizeResults(px)
		thrv := math.Inf(1)
		if thr != nil {
			thrv = *thr
		}
		res.PerImage = make([]sm.ImageDetail, len(recs))
		if err := parallel(len(recs), opt.Workers, func(i int, _ *scratch) error {
			var err error
			res.PerImage[i], err = perImage(thrv, i)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if w.list != nil {
		res.Warnings = w.list
	}
	return res, nil
}

// setThresholdMetrics fills the metrics at the pixel (and image) threshold.
func setThresholdMetrics(res *sm.Result, w *warnings, px *sweep, recs []imageRecord, opt Options) {
	t := &sm.Threshold{Pixel: *opt.Threshold, Source: opt.ThresholdSource, Image: opt.ImageThreshold}
	res.Threshold = t
	res.PixelSegF1 = sm.Known(w.check(px.segF1(), "pixel_segf1", "no defect pixel and no pixel at or above the threshold"))
	mean, n := segF1Mean(recs, func(imageRecord) bool { return true })
	t.SegF1Images = n
	res.PixelSegF1Mean = sm.Known(w.check(mean, "pixel_segf1_mean", "no image has a defect pixel or a pixel at or above the threshold"))
	res.PixelPROAtThreshold = sm.Known(w.check(px.atProbe(0), "pixel_pro_at_threshold", "no ground-truth defect regions"))
	if it := opt.ImageThreshold; it != nil {
		var tp, fp, P, N int64
		for _, r := range recs {
			if r.label == 1 {
				P++
				if r.score >= *it {
					tp++
				}
			} else {
				N++
				if r.score >= *it {
					fp++
				}
			}
		}
		if P+tp+fp > 0 {
			t.ImageF1 = sm.Known(ptr(float64(2*tp) / float64(tp+fp+P)))
		} else {
			t.ImageF1 = sm.Known(w.check(nil, "threshold.image_f1", "no anomalous image and no image at or above the image threshold"))
		}
		if P > 0 {
			t.ImageTPR = sm.Known(ptr(float64(tp) / float64(P)))
		} else {
			t.ImageTPR = sm.Known(w.check(nil, "threshold.image_tpr", "no anomalous images"))
		}
		if N > 0 {
			t.ImageFPR = sm.Known(ptr(float64(fp) / float64(N)))
		} else {
			t.ImageFPR = sm.Known(w.check(nil, "threshold.image_fpr", "no normal images"))
		}
	}
}

// segF1Mean is the mean per-image F1 at the threshold over the images in that have a defect pixel or a
// pixel at or above the threshold, in key order; nil when there is none.
func segF1Mean(recs []imageRecord, in func(imageRecord) bool) (*float64, int) {
	var sum kahan
	n := 0
	for _, r := range recs {
		if !in(r) {
			continue
		}
		if den := r.segTP + r.segFP + r.defects; den > 0 {
			sum.add(float64(2*r.segTP) / float64(den))
			n++
		}
	}
	if n == 0 {
		return nil, 0
	}
	return ptr(sum.value() / float64(n)), n
}

// setSPRO fills the sPRO results: pooled over all images, by kind, and the mean over the kinds.
func setSPRO(res *sm.Result, w *warnings, px *sweep, kindSweeps map[string]*sweep) {
	sp := &sm.SPROResult{Regions: px.tr[px.sproIdx].R, PooledByLimit: px.trackByLimit(px.sproIdx), ByKind: []sm.KindSPRO{}, MeanByLimit: sm.ByLimit{}}
	kinds := make([]string, 0, len(kindSweeps))
	for k := range kindSweeps {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		ks := kindSweeps[k]
		if ks.tr[ks.sproIdx].R == 0 {
			continue
		}
		sp.ByKind = append(sp.ByKind, sm.KindSPRO{Kind: k, Regions: ks.tr[ks.sproIdx].R, ByLimit: ks.trackByLimit(ks.sproIdx)})
	}
	for _, l := range px.lims {
		name := limitName(l)
		var sum kahan
		ok := len(sp.ByKind) > 0
		for _, kr := range sp.ByKind {
			if v := kr.ByLimit[name]; v != nil {
				sum.add(*v)
			} else {
				ok = false
			}
		}
		if ok {
			sp.MeanByLimit[name] = ptr(sum.value() / float64(len(sp.ByKind)))
		} else {
			sp.MeanByLimit[name] = nil
		}
	}
	if len(sp.ByKind) == 0 || sp.MeanByLimit[limitName(px.lims[px.primary])] == nil {
		w.check(nil, "pixel_spro_aupro_by_limit", "no defect kind has saturation regions and normal pixels")
	}
	if px.probeOn {
		sp.AtThreshold = sm.Known(px.atProbe(px.sproIdx))
	}
	res.SPRO = sp
	res.PixelSPROAUPROByLimit = sp.MeanByLimit
}

// perKind gathers the metrics of each defect kind against the normal images.
func perKind(recs []imageRecord, opt Options, sweeps map[string]*sweep) []sm.KindResult {
	kinds := make([]string, 0, len(sweeps))
	for k := range sweeps {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	out := make([]sm.KindResult, 0, len(kinds))
	for _, k := range kinds {
		var sub []imageRecord
		for _, r := range recs {
			if r.label == 0 || r.kind == k {
				sub = append(sub, r)
			}
		}
		s := sweeps[k]
		kr := sm.KindResult{Kind: k, Images: len(sub), ImageAUROC: imageSweepRecords(sub).auroc(),
			PixelAUROC: s.auroc(), PixelAP: s.ap(), PixelAUPRO: s.aupro(), PixelAUPROByLimit: s.trackByLimit(0)}
		if opt.Threshold != nil {
			kr.PixelSegF1 = sm.Known(s.segF1())
			m, _ := segF1Mean(sub, func(imageRecord) bool { return true })
			kr.PixelSegF1Mean = sm.Known(m)
		}
		out = append(out, kr)
	}
	return out
}

type warnings struct{ list []string }

// check passes a metric through, recording why when it is undefined.
// setPixelMetrics fills the pixel-level metrics of res from a finished sweep (null with a warning where
// undefined) and returns the pixel F1-max threshold. The exact result and the partial one share it.
func setPixelMetrics(res *sm.Result, w *warnings, px *sweep) (thr *float64) {
	res.PixelAUROC = w.check(px.auroc(), "pixel_auroc", px.undefinedAUROC("pixels"))
	res.PixelAP = w.check(px.ap(), "pixel_ap", px.undefinedAP("pixels"))
	f1, thr := px.f1()
	res.PixelF1Max = w.check(f1, "pixel_f1_max", px.undefinedAP("pixels"))
	res.PixelF1MaxThreshold = thr
	res.PixelAUPRO = w.check(px.aupro(), "pixel_aupro", px.undefinedPRO())
	res.PixelAUPROByLimit = px.trackByLimit(0)
	return thr
}

// countImages fills the image counts of c.
func countImages(c *sm.Counts, preps []*prepared) {
	recs := make([]imageRecord, len(preps))
	for i, p := range preps {
		recs[i] = recordOf(p)
	}
	countRecords(c, recs)
}

func countRecords(c *sm.Counts, recs []imageRecord) {
	c.Images = len(recs)
	for _, r := range recs {
		if r.label == 1 {
			c.AnomalousImages++
		} else {
			c.NormalImages++
		}
		if r.defects > 0 {
			c.ImagesWithNonemptyMask++
		}
	}
}

func (w *warnings) check(v *float64, name, why string) *float64 {
	if v == nil && name != "" {
		w.list = append(w.list, fmt.Sprintf("%s is undefined: %s", name, why))
	}
	return v
}

// scratch is per-worker reusable memory.
type scratch struct {
	labels []int32
	stack  []int32
	tmp32  []uint32
	tmp64  []uint64
}

// parallel runs f(i) for i in [0, n) on up to workers goroutines and returns the first error by index.
func parallel(n, workers int, f func(i int, s *scratch) error) error {
	if workers > n {
		workers = n
	}
	errs := make([]error, n)
	if workers <= 1 {
		s := &scratch{}
		for i := 0; i < n; i++ {
			errs[i] = f(i, s)
		}
	} else {
		next := make(chan int)
		done := make(chan struct{})
		for w := 0; w < workers; w++ {
			go func() {
				s := &scratch{}
				for i := range next {
					errs[i] = f(i, s)
				}
				done <- struct{}{}
			}()
		}
		for i := 0; i < n; i++ {
			next <- i
		}
		close(next)
		for w := 0; w < workers; w++ {
			<-done
		}
	}
	return firstErr(errs)
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
