package metrics

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// flat is an evaluation set flattened for the references: every pixel's value and whether it is normal.
type flat struct {
	vals   []float64
	normal []bool
	off    []int // first global pixel of each image
}

func flatten(images []Image) flat {
	var f flat
	for _, im := range images {
		f.off = append(f.off, len(f.vals))
		for i, v := range pixelValues(im) {
			f.vals = append(f.vals, v)
			f.normal = append(f.normal, im.Mask == nil || !im.Mask[i])
		}
	}
	return f
}

// bruteAU is the reference of every PRO-type area: at every distinct score t (descending) it counts the
// normal pixels >= t and, for each region (a list of global pixels with a saturation area), the covered
// pixels, y(t) = mean over regions of min(1, covered / sat), and integrates y over FPR from 0 to lim by
// trapezoids with the last one cut at lim, in exact rationals, divided by lim and capped at 1. With
// sat = area it is PRO. nil when there is no region or no normal pixel.
func bruteAU(f flat, regions [][]int, sat []int64, lim *big.Rat) *float64 {
	var N int64
	for _, n := range f.normal {
		if n {
			N++
		}
	}
	if len(regions) == 0 || N == 0 {
		return nil
	}
	thr := slices.Clone(f.vals)
	slices.Sort(thr)
	thr = slices.Compact(thr)
	slices.Reverse(thr)
	px, py := new(big.Rat), new(big.Rat)
	area := new(big.Rat)
	for _, t := range thr {
		var fp int64
		for i, v := range f.vals {
			if f.normal[i] && v >= t {
				fp++
			}
		}
		x := big.NewRat(fp, N)
		y := bruteY(f, regions, sat, t)
		if x.Cmp(lim) <= 0 {
			tr := new(big.Rat).Add(y, py)
			tr.Mul(tr, new(big.Rat).Sub(x, px))
			area.Add(area, tr.Quo(tr, big.NewRat(2, 1)))
			px, py = x, y
			continue
		}
		yi := new(big.Rat).Sub(y, py)
		yi.Mul(yi, new(big.Rat).Sub(lim, px))
		yi.Quo(yi, new(big.Rat).Sub(x, px))
		yi.Add(yi, py)
		tr := new(big.Rat).Add(yi, py)
		tr.Mul(tr, new(big.Rat).Sub(lim, px))
		area.Add(area, tr.Quo(tr, big.NewRat(2, 1)))
		break
	}
	area.Quo(area, lim)
	if area.Cmp(big.NewRat(1, 1)) > 0 {
		area.SetInt64(1)
	}
	return ratF(area)
}

// bruteY is the mean saturated coverage of the regions at threshold t.
func bruteY(f flat, regions [][]int, sat []int64, t float64) *big.Rat {
	y := new(big.Rat)
	for r, px := range regions {
		var c int64
		for _, i := range px {
			if f.vals[i] >= t {
				c++
			}
		}
		c = min(c, sat[r])
		y.Add(y, big.NewRat(c, sat[r]))
	}
	return y.Quo(y, big.NewRat(int64(len(regions)), 1))
}

// proRegions lists the 8-connected regions of the images (global pixels) with their areas as saturation,
// and each region's size class by the rule of the docs (share of the image area: < 0.1 %, <= 1 %, > 1 %).
func proRegions(images []Image, f flat) (regions [][]int, sat []int64, class []int) {
	for k, im := range images {
		if im.Mask == nil {
			continue
		}
		lab, n := bruteRegions(im.Mask, im.W, im.H)
		rs := make([][]int, n)
		for i, l := range lab {
			if l >= 0 {
				rs[l] = append(rs[l], f.off[k]+i)
			}
		}
		for _, r := range rs {
			regions = append(regions, r)
			sat = append(sat, int64(len(r)))
			share := new(big.Rat).SetFrac64(int64(len(r)), int64(im.W*im.H))
			c := 1
			if share.Cmp(big.NewRat(1, 1000)) < 0 {
				c = 0
			} else if share.Cmp(big.NewRat(1, 100)) > 0 {
				c = 2
			}
			class = append(class, c)
		}
	}
	return
}

// satRegions lists the saturation regions of the images (global pixels) with their saturation areas as
// LOCO defines them: clamped to [1, area].
func satRegions(images []Image, f flat) (regions [][]int, sat []int64) {
	for k, im := range images {
		for _, p := range im.SatRegions {
			var px []int
			for i, v := range p.Mask {
				if v {
					px = append(px, f.off[k]+i)
				}
			}
			regions = append(regions, px)
			sat = append(sat, min(max(p.Saturation, 1), int64(len(px))))
		}
	}
	return
}

func rat(l float64) *big.Rat {
	r := new(big.Rat)
	r.SetString(fmt.Sprint(l))
	return r
}

// withParts gives some defect images of a random case saturation regions: their defect pixels split into
// one to three possibly overlapping, possibly disconnected parts, with random saturation areas.
func withParts(r *rand.Rand, images []Image) []Image {
	for i := range images {
		im := &images[i]
		var def []int
		for j, d := range im.Mask {
			if d {
				def = append(def, j)
			}
		}
		if len(def) == 0 || r.IntN(4) == 0 {
			continue
		}
		n := 1 + r.IntN(3)
		parts := make([][]bool, n)
		for p := range parts {
			parts[p] = make([]bool, len(im.Mask))
		}
		for _, j := range def {
			parts[r.IntN(n)][j] = true
			if r.IntN(5) == 0 {
				parts[r.IntN(n)][j] = true // overlap
			}
		}
		for p := range parts {
			if slices.Contains(parts[p], true) {
				im.SatRegions = append(im.SatRegions, SatRegion{Mask: parts[p], Saturation: int64(r.IntN(len(def) + 3)), Name: fmt.Sprint("d", p)})
			}
		}
	}
	return images
}

func sameP(t *testing.T, ctx, name string, got, want *float64) {
	t.Helper()
	same(t, ctx, name, got, want)
}

func checkByLimit(t *testing.T, ctx, name string, got sm.ByLimit, lims []float64, want func(lim float64) *float64) {
	t.Helper()
	if len(got) != len(lims) {
		t.Errorf("%s: %s has %d limits %v, want %d", ctx, name, len(got), got, len(lims))
	}
	for _, l := range lims {
		v, ok := got[limitName(l)]
		if !ok {
			t.Errorf("%s: %s lacks limit %s", ctx, name, limitName(l))
			continue
		}
		sameP(t, ctx, name+"["+limitName(l)+"]", v, want(l))
	}
}

// TestCompute_AUPROByLimit_HandWorked: a good image 4x1 [0.1 0.2 0.3 0.4] and a defect image 4x1
// [0.9 0.25 0.35 0.05] whose first two pixels are one region (area 2). Six normal pixels. Going down:
// 0.9 covers half the region at FPR 0; 0.4, 0.35, 0.3 add normal pixels (FPR 3/6) at PRO 1/2; 0.25
// completes the region (PRO 1 at FPR 1/2); the rest reach FPR 1 at PRO 1. So up to any limit <= 1/2 the
// curve is flat at 1/2 (AU 0.5); up to 0.6: 0.5 * 0.5 + 0.1 * 1 = 0.35, / 0.6 = 0.58333...; up to 1:
// 0.25 + 0.5 = 0.75.
func TestCompute_AUPROByLimit_HandWorked(t *testing.T) {
	images := []Image{
		{Key: "good/000", Kind: "good", W: 4, H: 1, Map: []float32{0.1, 0.2, 0.3, 0.4}},
		{Key: "crack/000", Kind: "crack", Label: 1, W: 4, H: 1, Map: []float32{0.9, 0.25, 0.35, 0.05}, Mask: []bool{true, true, false, false}},
	}
	res, err := Compute(images, Options{FPRLimits: []float64{1, 0.6}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"0.05": 0.5, "0.3": 0.5, "0.6": 0.35 / 0.6, "1": 0.75}
	if len(res.PixelAUPROByLimit) != len(want) {
		t.Errorf("limits %v, want %v", res.PixelAUPROByLimit, want)
	}
	for k, w := range want {
		if g := res.PixelAUPROByLimit[k]; g == nil || math.Abs(*g-w) > 1e-12 {
			t.Errorf("aupro at %s: got %v, want %v", k, fmtp(g), w)
		}
	}
	if res.PixelAUPRO == nil || *res.PixelAUPRO != *res.PixelAUPROByLimit["0.3"] || res.FPRLimit != 0.3 {
		t.Errorf("pixel_aupro %v at limit %v, want the 0.3 entry", fmtp(res.PixelAUPRO), res.FPRLimit)
	}
	// The first limit given is the primary one.
	res, err = Compute(images, Options{FPRLimit: 1, FPRLimits: []float64{0.6}})
	if err != nil {
		t.Fatal(err)
	}
	if res.PixelAUPRO == nil || math.Abs(*res.PixelAUPRO-0.75) > 1e-12 || len(res.PixelAUPROByLimit) != 4 {
		t.Errorf("primary limit 1: pixel_aupro %v, by limit %v", fmtp(res.PixelAUPRO), res.PixelAUPROByLimit)
	}
}

// TestCompute_AUPROByLimit_BruteForce_Random checks every limit of random sets (ties, constant maps,
// negative scores, one-pixel and diagonal regions) against the exact reference, through both sort paths,
// and that the primary limit's value is pixel_aupro exactly.
func TestCompute_AUPROByLimit_BruteForce_Random(t *testing.T) {
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(7, 8))
	cases := 300
	if raceEnabled {
		cases = 60
	}
	extra := []float64{0.01, 0.1, 1, 0.5, 0.3}
	for c := 0; c < cases; c++ {
		images := randomCase(r)
		primary := []float64{0.3, 0.05, 0.2, 1}[r.IntN(4)]
		opt := Options{FPRLimit: primary, FPRLimits: extra[:r.IntN(len(extra)+1)]}
		lims, _ := opt.limits()
		f := flatten(images)
		regions, sat, _ := proRegions(images, f)
		for _, ss := range []int{0, defaultSmallSet} {
			smallSet = ss
			ctx := fmt.Sprintf("case %d (smallSet %d)", c, ss)
			res, err := Compute(images, opt)
			if err != nil {
				t.Fatalf("%s: %v", ctx, err)
			}
			checkByLimit(t, ctx, "pixel_aupro_by_limit", res.PixelAUPROByLimit, lims, func(l float64) *float64 { return bruteAU(f, regions, sat, rat(l)) })
			if p := res.PixelAUPROByLimit[limitName(primary)]; (p == nil) != (res.PixelAUPRO == nil) || (p != nil && *p != *res.PixelAUPRO) {
				t.Errorf("%s: pixel_aupro %v differs from its by-limit entry %v", ctx, fmtp(res.PixelAUPRO), fmtp(p))
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestCompute_SegF1_HandWorked: the set of the AUPRO case at threshold 0.3. At or above it: the good
// image's 0.3 and 0.4, the defect image's 0.9 (defect) and 0.35 (normal). Pooled: TP 1, FP 3, P 2, so
// F1 = 2*1 / (1 + 3 + 2) = 1/3. Per image: good TP 0 FP 2 FN 0, F1 0; defect TP 1 FP 1 FN 1, F1 1/2;
// mean over both (each has a prediction or a defect) 1/4. PRO at the threshold: half of the one region.
// At threshold 0.95 nothing is predicted: pooled F1 0 (P 2 > 0); the good image has neither a defect
// nor a prediction and leaves the mean: mean over the defect image alone, 0.
func TestCompute_SegF1_HandWorked(t *testing.T) {
	images := []Image{
		{Key: "good/000", Kind: "good", W: 4, H: 1, Map: []float32{0.1, 0.2, 0.3, 0.4}},
		{Key: "crack/000", Kind: "crack", Label: 1, W: 4, H: 1, Map: []float32{0.9, 0.25, 0.35, 0.05}, Mask: []bool{true, true, false, false}},
	}
	for _, c := range []struct {
		thr             float64
		f1, mean, pro   float64
		images          int
		imgF1, tpr, fpr float64
	}{
		{0.3, 1.0 / 3, 0.25, 0.5, 2, 2.0 / 3, 1, 1}, // image scores (max): good 0.4, defect 0.9; image threshold 0.3 takes both
		{0.95, 0, 0, 0, 1, 2.0 / 3, 1, 1},
	} {
		thr, it := c.thr, 0.3
		res, err := Compute(images, Options{Threshold: &thr, ThresholdSource: "--threshold", ImageThreshold: &it})
		if err != nil {
			t.Fatal(err)
		}
		ctx := fmt.Sprint("threshold ", thr)
		for _, m := range []struct {
			name string
			got  sm.Optional
			want float64
		}{{"pixel_segf1", res.PixelSegF1, c.f1}, {"pixel_segf1_mean", res.PixelSegF1Mean, c.mean}, {"pixel_pro_at_threshold", res.PixelPROAtThreshold, c.pro},
			{"image_f1", res.Threshold.ImageF1, c.imgF1}, {"image_tpr", res.Threshold.ImageTPR, c.tpr}, {"image_fpr", res.Threshold.ImageFPR, c.fpr}} {
			if !m.got.Known || m.got.Value == nil || math.Abs(*m.got.Value-m.want) > 1e-15 {
				t.Errorf("%s: %s = %+v, want %v", ctx, m.name, m.got, m.want)
			}
		}
		if res.Threshold.Pixel != thr || res.Threshold.Source != "--threshold" || res.Threshold.SegF1Images != c.images {
			t.Errorf("%s: threshold block %+v", ctx, res.Threshold)
		}
	}
	// No threshold: none of them.
	res, err := Compute(images, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Threshold != nil || res.PixelSegF1.Known || res.PixelSegF1Mean.Known || res.PixelPROAtThreshold.Known {
		t.Errorf("threshold metrics without a threshold: %+v %+v", res.Threshold, res.PixelSegF1)
	}
	// Only normal pixels and none predicted: F1 is 0/0, null with a warning.
	thr := 2.0
	res, err = Compute(images[:1], Options{Threshold: &thr})
	if err != nil {
		t.Fatal(err)
	}
	if !res.PixelSegF1.Known || res.PixelSegF1.Value != nil || !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return w == "pixel_segf1 is undefined: no defect pixel and no pixel at or above the threshold"
	}) {
		t.Errorf("undefined SegF1: %+v, warnings %q", res.PixelSegF1, res.Warnings)
	}
}

// bruteSeg is the reference of SegF1 at thr: pooled over the images, and the per-image mean over images
// with a defect or a prediction.
func bruteSeg(images []Image, thr float64) (pooled, mean *float64, n int) {
	var tp, fp, P int64
	sum := new(big.Rat)
	for _, im := range images {
		var itp, ifp, ip int64
		for i, v := range pixelValues(im) {
			d := im.Mask != nil && im.Mask[i]
			if d {
				ip++
			}
			if v >= thr {
				if d {
					itp++
				} else {
					ifp++
				}
			}
		}
		tp, fp, P = tp+itp, fp+ifp, P+ip
		if itp+ifp+ip > 0 {
			sum.Add(sum, big.NewRat(2*itp, itp+ifp+ip))
			n++
		}
	}
	if tp+fp+P > 0 {
		pooled = ratF(big.NewRat(2*tp, tp+fp+P))
	}
	if n > 0 {
		mean = ratF(sum.Quo(sum, big.NewRat(int64(n), 1)))
	}
	return
}

// TestCompute_SegF1_BruteForce_Random: SegF1 pooled and mean, PRO at the threshold and, per kind, SegF1
// over the normal images plus the kind, at thresholds on, between and beyond the scores, float32 and
// float64 maps.
func TestCompute_SegF1_BruteForce_Random(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	cases := 300
	if raceEnabled {
		cases = 60
	}
	for c := 0; c < cases; c++ {
		images := randomCase(r)
		if r.IntN(3) == 0 {
			for i := range images {
				images[i].Map64 = pixelValues(images[i])
				for j := range images[i].Map64 {
					images[i].Map64[j] += 1e-12 * float64(r.IntN(3)) // apart in float64 only
				}
				images[i].Map = nil
			}
		}
		f := flatten(images)
		var thr float64
		switch r.IntN(3) {
		case 0:
			thr = f.vals[r.IntN(len(f.vals))]
		case 1:
			thr = r.Float64()*1.5 - 0.3
		case 2:
			thr = []float64{-10, 10}[r.IntN(2)]
		}
		ctx := fmt.Sprintf("case %d thr %v", c, thr)
		res, err := Compute(images, Options{Threshold: &thr})
		if err != nil {
			t.Fatalf("%s: %v", ctx, err)
		}
		pooled, mean, n := bruteSeg(images, thr)
		sameP(t, ctx, "pixel_segf1", res.PixelSegF1.Value, pooled)
		sameP(t, ctx, "pixel_segf1_mean", res.PixelSegF1Mean.Value, mean)
		if res.Threshold.SegF1Images != n {
			t.Errorf("%s: segf1 over %d images, want %d", ctx, res.Threshold.SegF1Images, n)
		}
		regions, sat, _ := proRegions(images, f)
		var pro *float64
		if len(regions) > 0 {
			pro = ratF(bruteY(f, regions, sat, thr))
		}
		sameP(t, ctx, "pixel_pro_at_threshold", res.PixelPROAtThreshold.Value, pro)
		for _, k := range res.PerKind {
			var sub []Image
			for _, im := range images {
				if im.Label == 0 || im.Kind == k.Kind {
					sub = append(sub, im)
				}
			}
			p, m, _ := bruteSeg(sub, thr)
			sameP(t, ctx+" kind "+k.Kind, "pixel_segf1", k.PixelSegF1.Value, p)
			sameP(t, ctx+" kind "+k.Kind, "pixel_segf1_mean", k.PixelSegF1Mean.Value, m)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestSizeClass_Bounds: in a 100x100 image (10000 pixels) 0.1 % is 10 pixels and 1 % is 100.
func TestSizeClass_Bounds(t *testing.T) {
	for _, c := range []struct {
		area int64
		want uint8
	}{{1, sizeSmall}, {9, sizeSmall}, {10, sizeMedium}, {100, sizeMedium}, {101, sizeLarge}, {10000, sizeLarge}} {
		if got := sizeClass(c.area, 10000); got != c.want {
			t.Errorf("area %d of 10000: class %d, want %d", c.area, got, c.want)
		}
	}
}

// TestCompute_PerSize_BruteForce_Random: AU-PRO and PRO at the threshold of each size class (regions of
// that class only, FPR over every normal pixel) against the reference, on sets with regions of all three
// classes.
func TestCompute_PerSize_BruteForce_Random(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	cases := 60
	if raceEnabled {
		cases = 15
	}
	for c := 0; c < cases; c++ {
		// 40x40 images (1600 pixels): small < 1.6 pixels (one pixel), medium 2..16, large > 16.
		var images []Image
		for i := range 1 + r.IntN(4) {
			w, h := 40, 40
			im := Image{Key: fmt.Sprintf("k/%03d", i), Kind: "good", W: w, H: h, Map: make([]float32, w*h)}
			for j := range im.Map {
				im.Map[j] = float32(r.IntN(50)) / 50
			}
			if r.IntN(4) > 0 {
				im.Kind, im.Label = "k", 1
				im.Mask = make([]bool, w*h)
				for range 1 + r.IntN(3) {
					side := []int{1, 3, 6}[r.IntN(3)]
					x0, y0 := r.IntN(w-side), r.IntN(h-side)
					for y := y0; y < y0+side; y++ {
						for x := x0; x < x0+side; x++ {
							im.Mask[y*w+x] = true
							im.Map[y*w+x] += 0.3 * float32(r.IntN(3))
						}
					}
				}
			}
			images = append(images, im)
		}
		thr := 0.5
		res, err := Compute(images, Options{Detail: true, Threshold: &thr, FPRLimits: []float64{1}})
		if err != nil {
			t.Fatal(err)
		}
		f := flatten(images)
		regions, sat, class := proRegions(images, f)
		if len(res.PerSize) != 3 {
			t.Fatalf("per_size has %d classes", len(res.PerSize))
		}
		for k, sr := range res.PerSize {
			var rs [][]int
			var ss []int64
			for i := range regions {
				if class[i] == k {
					rs, ss = append(rs, regions[i]), append(ss, sat[i])
				}
			}
			ctx := fmt.Sprintf("case %d size %s", c, sr.Size)
			if sr.Size != sizeNames[k] || sr.Regions != int64(len(rs)) {
				t.Errorf("%s: %s with %d regions, want %s with %d", ctx, sr.Size, sr.Regions, sizeNames[k], len(rs))
			}
			checkByLimit(t, ctx, "aupro", sr.PixelAUPROByLimit, []float64{0.05, 0.3, 1}, func(l float64) *float64 { return bruteAU(f, rs, ss, rat(l)) })
			sameP(t, ctx, "pixel_aupro", sr.PixelAUPRO, bruteAU(f, rs, ss, rat(0.3)))
			var pro *float64
			if len(rs) > 0 {
				pro = ratF(bruteY(f, rs, ss, thr))
			}
			sameP(t, ctx, "pro_at_threshold", sr.PROAtThreshold.Value, pro)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// locoCase is the hand-worked sPRO case (values below are worked out in TestCompute_SPRO_HandWorked).
func locoCase() []Image {
	return []Image{
		{Key: "good/000", Kind: "good", W: 4, H: 1, Map: []float32{0.1, 0.2, 0.6, 0.0}},
		{Key: "logical_anomalies/000", Kind: "logical_anomalies", Label: 1, W: 6, H: 1,
			Map:  []float32{0.9, 0.4, 0.8, 0.3, 0.5, 0.05},
			Mask: []bool{true, false, true, true, false, false},
			SatRegions: []SatRegion{
				{Mask: []bool{true, false, true, false, false, false}, Saturation: 1, Name: "A"},  // two pixels apart: one region
				{Mask: []bool{false, false, false, true, false, false}, Saturation: 5, Name: "B"}, // 5 > area 1: capped to 1
			}},
		{Key: "structural_anomalies/000", Kind: "structural_anomalies", Label: 1, W: 4, H: 1,
			Map:        []float32{0.7, 0.6, 0.2, 0.1},
			Mask:       []bool{true, true, true, false},
			SatRegions: []SatRegion{{Mask: []bool{true, true, true, false}, Saturation: 3, Name: "C"}}}, // relative 1.0 of area 3
	}
}

// TestCompute_SPRO_HandWorked: three images (G good, L logical with two mask files, S structural with one).
//
// Logical (G + L, 7 normal pixels; regions A = L's pixels 0 and 2, saturating at 1 pixel, and B = pixel 3,
// saturation 5 capped at its area 1). Going down: 0.9 saturates A (sPRO 1/2 at FPR 0); 0.8 adds nothing
// new; 0.6, 0.5, 0.4 are normal (FPR 3/7 = 0.43 at 1/2); 0.3 covers B (1 at 3/7); the rest is normal up to
// FPR 1. AU-sPRO: 0.5 at limits 0.05 and 0.3 (both below 3/7); at 1: 0.5 * 3/7 + 4/7 = 5.5/7 = 0.785714.
//
// Structural (G + S, 5 normal pixels; region C = S's pixels 0..2, saturation 3): 0.7 covers 1/3 at FPR 0;
// 0.6 covers 2/3 and G's 0.6 is normal (FPR 1/5); 0.2 completes C with G's 0.2 (FPR 2/5, sPRO 1); then
// FPR 4/5 and 1. Limit 0.05: the first segment cut at 0.05 has y = 1/3 + 1/3 * 0.05/0.2 = 5/12, area
// (1/3 + 5/12)/2 * 0.05 = 0.01875, / 0.05 = 0.375. Limit 0.3: 0.1 for the first segment, then (0.2, 2/3)
// to (0.4, 1) cut at 0.3 (y 5/6): (2/3 + 5/6)/2 * 0.1 = 0.075; 0.175 / 0.3 = 0.583333. Limit 1:
// 0.1 + (2/3 + 1)/2 * 0.2 + 0.6 = 0.866667.
//
// Mean of the two kinds: 0.4375, 0.541667, 0.826190.
//
// Pooled (all three, 8 normal pixels, regions A, B, C): 0.9 gives 1/3 (A); 0.7 gives 4/9 (C at 1/3);
// 0.6 gives 5/9 at FPR 1/8; 0.5, 0.4 reach FPR 3/8; 0.3 gives 8/9 (B); 0.2 gives 1 at FPR 4/8. Limit
// 0.05: y at 0.05 = 4/9 + 1/9 * 0.05/0.125 = 4.4/9, area (4/9 + 4.4/9)/2 * 0.05, / 0.05 = 4.2/9 = 7/15.
// Limit 0.3: 1/16 + 5/9 * 1/8 + 5/9 * 0.05 = 23/144, / 0.3 = 0.532407.
//
// sPRO at threshold 0.35 (pooled): A saturated (1), B not covered (0), C two of three (2/3): 5/9.
func TestCompute_SPRO_HandWorked(t *testing.T) {
	thr := 0.35
	res, err := Compute(locoCase(), Options{FPRLimits: []float64{1}, Threshold: &thr, NoPerKind: true})
	if err != nil {
		t.Fatal(err)
	}
	sp := res.SPRO
	if sp == nil {
		t.Fatal("no sPRO result")
	}
	near := func(ctx string, got *float64, want float64) {
		t.Helper()
		if got == nil || math.Abs(*got-want) > 1e-12 {
			t.Errorf("%s: got %v, want %.17g", ctx, fmtp(got), want)
		}
	}
	if sp.Regions != 3 || len(sp.ByKind) != 2 || sp.ByKind[0].Kind != "logical_anomalies" || sp.ByKind[0].Regions != 2 || sp.ByKind[1].Regions != 1 {
		t.Fatalf("sPRO regions %d, by kind %+v", sp.Regions, sp.ByKind)
	}
	logical, structural := sp.ByKind[0].ByLimit, sp.ByKind[1].ByLimit
	near("logical 0.05", logical["0.05"], 0.5)
	near("logical 0.3", logical["0.3"], 0.5)
	near("logical 1", logical["1"], 5.5/7)
	near("structural 0.05", structural["0.05"], 0.375)
	near("structural 0.3", structural["0.3"], 0.175/0.3)
	near("structural 1", structural["1"], 0.1+(2.0/3+1)/2*0.2+0.6)
	near("mean 0.05", sp.MeanByLimit["0.05"], (0.5+0.375)/2)
	near("mean 0.3", sp.MeanByLimit["0.3"], (0.5+0.175/0.3)/2)
	near("mean 1", sp.MeanByLimit["1"], (5.5/7+0.1+(2.0/3+1)/2*0.2+0.6)/2)
	near("pooled 0.05", sp.PooledByLimit["0.05"], 7.0/15)
	near("pooled 0.3", sp.PooledByLimit["0.3"], 23.0/144/0.3)
	near("at threshold", sp.AtThreshold.Value, 5.0/9)
	for k, v := range sp.MeanByLimit {
		if w := res.PixelSPROAUPROByLimit[k]; w == nil || *w != *v {
			t.Errorf("pixel_spro_aupro_by_limit[%s] = %v, want the mean %v", k, fmtp(w), *v)
		}
	}
	if res.PerKind != nil {
		t.Error("per_kind printed with NoPerKind")
	}
	// Plain PRO is unchanged by the saturation regions: 8-connected components of the union.
	plain := locoCase()
	for i := range plain {
		plain[i].SatRegions = nil
	}
	ref, err := Compute(plain, Options{FPRLimits: []float64{1}, Threshold: &thr, NoPerKind: true})
	if err != nil {
		t.Fatal(err)
	}
	if *ref.PixelAUPRO != *res.PixelAUPRO || ref.Counts.Regions != res.Counts.Regions || ref.SPRO != nil {
		t.Errorf("saturation regions changed plain PRO: %v vs %v", *res.PixelAUPRO, *ref.PixelAUPRO)
	}
}

// TestCompute_SPRO_BruteForce_Random: random sets whose defect images have one to three overlapping,
// disconnected saturation regions with random saturation areas; pooled, per kind and mean against the
// reference, for float32 and float64 maps.
func TestCompute_SPRO_BruteForce_Random(t *testing.T) {
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(13, 14))
	cases := 300
	if raceEnabled {
		cases = 60
	}
	lims := []float64{0.05, 0.3, 1}
	for c := 0; c < cases; c++ {
		images := withParts(r, randomCase(r))
		if r.IntN(4) == 0 {
			for i := range images {
				images[i].Map64, images[i].Map = pixelValues(images[i]), nil
			}
		}
		if r.IntN(2) == 0 {
			smallSet = 0
		} else {
			smallSet = defaultSmallSet
		}
		thr := r.Float64()
		res, err := Compute(images, Options{FPRLimits: []float64{1}, Threshold: &thr})
		if err != nil {
			t.Fatal(err)
		}
		f := flatten(images)
		regions, sat := satRegions(images, f)
		ctx := fmt.Sprintf("case %d", c)
		if len(regions) == 0 {
			if res.SPRO != nil {
				t.Errorf("%s: sPRO without saturation regions", ctx)
			}
			continue
		}
		sp := res.SPRO
		checkByLimit(t, ctx, "pooled", sp.PooledByLimit, lims, func(l float64) *float64 { return bruteAU(f, regions, sat, rat(l)) })
		sameP(t, ctx, "at threshold", sp.AtThreshold.Value, ratF(bruteY(f, regions, sat, thr)))
		kinds := map[string]bool{}
		for _, im := range images {
			if im.Label == 1 && len(im.SatRegions) > 0 {
				kinds[im.Kind] = true
			}
		}
		if len(sp.ByKind) != len(kinds) {
			t.Errorf("%s: %d kinds, want %d", ctx, len(sp.ByKind), len(kinds))
		}
		means := map[string]*big.Rat{}
		for _, kr := range sp.ByKind {
			var sub []Image
			for _, im := range images {
				if im.Label == 0 || im.Kind == kr.Kind {
					sub = append(sub, im)
				}
			}
			sf := flatten(sub)
			sr, ss := satRegions(sub, sf)
			checkByLimit(t, ctx+" "+kr.Kind, "by kind", kr.ByLimit, lims, func(l float64) *float64 {
				v := bruteAU(sf, sr, ss, rat(l))
				if v != nil {
					if means[limitName(l)] == nil {
						means[limitName(l)] = new(big.Rat)
					}
					means[limitName(l)].Add(means[limitName(l)], new(big.Rat).SetFloat64(*v))
				}
				return v
			})
		}
		for _, l := range lims {
			got := sp.MeanByLimit[limitName(l)]
			if m := means[limitName(l)]; m != nil && got != nil {
				w, _ := m.Quo(m, big.NewRat(int64(len(sp.ByKind)), 1)).Float64()
				sameP(t, ctx, "mean "+limitName(l), got, &w)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestCompute_SPRO_BadRegions_Errors: a saturation region outside the mask, an empty one, a wrong size.
func TestCompute_SPRO_BadRegions_Errors(t *testing.T) {
	base := func() Image {
		return Image{Key: "x/000", Kind: "x", Label: 1, W: 2, H: 1, Map: []float32{1, 0}, Mask: []bool{true, false}}
	}
	for name, sr := range map[string]SatRegion{
		"outside the mask": {Mask: []bool{false, true}, Saturation: 1},
		"empty":            {Mask: []bool{false, false}, Saturation: 1},
		"wrong size":       {Mask: []bool{true}, Saturation: 1},
	} {
		im := base()
		im.SatRegions = []SatRegion{sr}
		if _, err := Compute([]Image{im}, Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseLimits(t *testing.T) {
	got, err := ParseLimits(" 0.3, 0.05,1 ")
	if err != nil || !slices.Equal(got, []float64{0.3, 0.05, 1}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1.5", "x", "0.3,,-1"} {
		if _, err := ParseLimits(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
