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
}

// Options tune an evaluation. The zero value is the standard evaluation.
type Options struct {
	// FPRLimit is the upper integration limit of AUPRO, in (0, 1]; 0 means 0.3.
	FPRLimit float64
	// Detail adds the per-image table (per-image pixel AP and region coverage), which costs one more sort
	// of the pixels of defective images.
	Detail bool
	// NoPerKind skips the per-defect-kind metrics, which cost one more pass per kind over the normal images.
	NoPerKind bool
	// Workers bounds the parallelism; 0 means GOMAXPROCS.
	Workers int
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
	return computePrepared(preps, opt)
}

// computePrepared evaluates validated images, in key order whatever order they come in.
func computePrepared(preps []*prepared, opt Options) (*sm.Result, error) {
	preps = slices.Clone(preps)
	slices.SortFunc(preps, func(a, b *prepared) int { return strings.Compare(a.img.Key, b.img.Key) })
	for i := 1; i < len(preps); i++ {
		if preps[i].img.Key == preps[i-1].img.Key {
			return nil, fmt.Errorf("evaluate: duplicate image key %q", preps[i].img.Key)
		}
	}
	var codes *codeBook
	for _, p := range preps {
		if p.img.Map64 != nil {
			var err error
			if preps, codes, err = encode(preps, opt.Workers); err != nil {
				return nil, err
			}
			break
		}
	}
	res := &sm.Result{FPRLimit: opt.FPRLimit, Warnings: []string{}}
	var w warnings

	// Image-level metrics.
	img := imageSweep(preps, opt.FPRLimit)
	res.ImageAUROC = w.check(img.auroc(), "image_auroc", img.undefinedAUROC("images"))
	res.ImageAP = w.check(img.ap(), "image_ap", img.undefinedAP("images"))
	f1, thr := img.f1()
	res.ImageF1Max = w.check(f1, "image_f1_max", img.undefinedAP("images"))
	res.ImageF1MaxThreshold = thr

	// Pixel-level metrics.
	px, kindSweeps := pixelSweeps(preps, opt, !opt.NoPerKind)
	thr = setPixelMetrics(res, &w, px)
	c := &res.Counts
	countImages(c, preps)
	c.AnomalousPixels, c.NormalPixels = px.P, px.N
	c.Pixels = px.P + px.N
	c.Regions = px.R
	c.DistinctPixelScores = px.distinct
	res.Curves = &sm.Curves{PixelROC: px.roc.curve(), PixelPR: px.pr.curve(), PixelPRO: px.proCurve.curve(), ImageROC: img.roc.curve()}

	if !opt.NoPerKind {
		res.PerKind = perKind(preps, opt, kindSweeps)
	}
	if opt.Detail {
		var thrv float64
		if thr != nil {
			thrv = *thr
		} else {
			thrv = math.Inf(1)
		}
		res.PerImage = make([]sm.ImageDetail, len(preps))
		_ = parallel(len(preps), opt.Workers, func(i int, s *scratch) error {
			res.PerImage[i] = detail(preps[i], thrv, s)
			return nil
		})
	}
	if w.list != nil {
		res.Warnings = w.list
	}
	if codes != nil {
		codes.decodeResult(res)
	}
	return res, nil
}

// perKind gathers the metrics of each defect kind against the normal images.
func perKind(preps []*prepared, opt Options, sweeps map[string]*sweep) []sm.KindResult {
	kinds := make([]string, 0, len(sweeps))
	for k := range sweeps {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	out := make([]sm.KindResult, 0, len(kinds))
	for _, k := range kinds {
		var sub []*prepared
		for _, p := range preps {
			if p.img.Label == 0 || p.img.Kind == k {
				sub = append(sub, p)
			}
		}
		s := sweeps[k]
		out = append(out, sm.KindResult{Kind: k, Images: len(sub), ImageAUROC: imageSweep(sub, opt.FPRLimit).auroc(),
			PixelAUROC: s.auroc(), PixelAP: s.ap(), PixelAUPRO: s.aupro()})
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
	return thr
}

// countImages fills the image counts of c.
func countImages(c *sm.Counts, preps []*prepared) {
	c.Images = len(preps)
	for _, p := range preps {
		if p.img.Label == 1 {
			c.AnomalousImages++
		} else {
			c.NormalImages++
		}
		if p.defects > 0 {
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
