package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// bruteResult holds the metrics of the reference implementation; nil = undefined.
type bruteResult struct {
	imageAUROC, imageAP, imageF1, imageF1Thr *float64
	pixelAUROC, pixelAP, pixelF1, pixelF1Thr *float64
	aupro                                    *float64
	regions                                  int
	perImageAP                               []*float64
	covered                                  [][]float64
}

// bruteRegions labels 8-connected regions by recursive flood fill (deliberately unlike the engine's
// explicit stack), numbering them in raster order of their first pixel.
func bruteRegions(mask []bool, w, h int) ([]int, int) {
	lab := make([]int, w*h)
	for i := range lab {
		lab[i] = -1
	}
	n := 0
	var fill func(x, y, r int)
	fill = func(x, y, r int) {
		if x < 0 || y < 0 || x >= w || y >= h || !mask[y*w+x] || lab[y*w+x] >= 0 {
			return
		}
		lab[y*w+x] = r
		for _, d := range [][2]int{{-1, -1}, {0, -1}, {1, -1}, {-1, 0}, {1, 0}, {-1, 1}, {0, 1}, {1, 1}} {
			fill(x+d[0], y+d[1], r)
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if mask[y*w+x] && lab[y*w+x] < 0 {
				fill(x, y, n)
				n++
			}
		}
	}
	return lab, n
}

type bsample struct {
	score  float64
	pos    bool
	region int // global region id, -1 for normal
}

func ratF(r *big.Rat) *float64 { f, _ := r.Float64(); return &f }

// bruteBinary computes AUROC by pair counting (ties count one half), AP and F1-max by visiting every
// distinct threshold and counting all samples again, and AUPRO from those same per-threshold counts,
// everything in exact rational arithmetic. areas non-nil turns on AUPRO.
func bruteBinary(xs []bsample, areas []int, lim *big.Rat) (auroc, ap, f1, f1thr, aupro *float64) {
	var P, N int64
	for _, x := range xs {
		if x.pos {
			P++
		} else {
			N++
		}
	}
	if P > 0 && N > 0 {
		var wins2 int64 // twice the wins: a tie counts one half
		for _, a := range xs {
			if !a.pos {
				continue
			}
			for _, b := range xs {
				if b.pos {
					continue
				}
				if a.score > b.score {
					wins2 += 2
				} else if a.score == b.score {
					wins2++
				}
			}
		}
		wins := big.NewRat(wins2, 2)
		auroc = ratF(wins.Quo(wins, big.NewRat(P*N, 1)))
	}
	var thr []float64
	for _, x := range xs {
		thr = append(thr, x.score)
	}
	slices.Sort(thr)
	thr = slices.Compact(thr)
	slices.Reverse(thr)
	apSum := new(big.Rat)
	var best *big.Rat
	var bestThr float64
	prevTP := int64(0)
	// PRO points, starting at (0, 0).
	px, py := new(big.Rat), new(big.Rat)
	area := new(big.Rat)
	done := false
	for _, t := range thr {
		var tp, fp int64
		cov := make([]int, len(areas))
		for _, x := range xs {
			if x.score >= t {
				if x.pos {
					tp++
					if x.region >= 0 {
						cov[x.region]++
					}
				} else {
					fp++
				}
			}
		}
		if tp > prevTP {
			r := big.NewRat(tp-prevTP, 1)
			apSum.Add(apSum, r.Mul(r, big.NewRat(tp, tp+fp)))
		}
		prevTP = tp
		if P > 0 {
			f := big.NewRat(2*tp, tp+fp+P)
			if best == nil || f.Cmp(best) >= 0 {
				best, bestThr = f, t
			}
		}
		if areas != nil && len(areas) > 0 && N > 0 && !done {
			x := big.NewRat(fp, N)
			y := new(big.Rat)
			for r, a := range areas {
				y.Add(y, big.NewRat(int64(cov[r]), int64(a)))
			}
			y.Quo(y, big.NewRat(int64(len(areas)), 1))
			if x.Cmp(lim) <= 0 {
				tr := new(big.Rat).Add(y, py)
				tr.Mul(tr, new(big.Rat).Sub(x, px))
				area.Add(area, tr.Quo(tr, big.NewRat(2, 1)))
				px, py = x, y
			} else {
				// Cut at lim: interpolate between (px, py) and (x, y).
				yi := new(big.Rat).Sub(y, py)
				yi.Mul(yi, new(big.Rat).Sub(lim, px))
				yi.Quo(yi, new(big.Rat).Sub(x, px))
				yi.Add(yi, py)
				tr := new(big.Rat).Add(yi, py)
				tr.Mul(tr, new(big.Rat).Sub(lim, px))
				area.Add(area, tr.Quo(tr, big.NewRat(2, 1)))
				done = true
			}
		}
	}
	if P > 0 {
		ap = ratF(apSum.Quo(apSum, big.NewRat(P, 1)))
		f1, f1thr = ratF(best), &bestThr
	}
	if areas != nil && len(areas) > 0 && N > 0 {
		aupro = ratF(area.Quo(area, lim))
	}
	return
}

func brute(images []Image, lim *big.Rat, detailThr *float64) bruteResult {
	var res bruteResult
	var imgs, pix []bsample
	var areas []int
	for _, im := range images {
		vals := pixelValues(im)
		s := slices.Max(vals)
		if im.Score != nil {
			s = *im.Score
		}
		imgs = append(imgs, bsample{s, im.Label == 1, -1})
		mask := im.Mask
		if mask == nil {
			mask = make([]bool, im.W*im.H)
		}
		lab, n := bruteRegions(mask, im.W, im.H)
		base := len(areas)
		local := make([]int, n)
		for i, v := range vals {
			r := -1
			if mask[i] {
				r = base + lab[i]
				local[lab[i]]++
			}
			pix = append(pix, bsample{v, mask[i], r})
		}
		areas = append(areas, local...)
		// Per-image detail.
		var own []bsample
		for i, v := range vals {
			own = append(own, bsample{v, mask[i], -1})
		}
		_, iap, _, _, _ := bruteBinary(own, nil, lim)
		res.perImageAP = append(res.perImageAP, iap)
		var cov []float64
		if detailThr != nil {
			cnt := make([]int, n)
			for i, v := range vals {
				if mask[i] && v >= *detailThr {
					cnt[lab[i]]++
				}
			}
			for r := range cnt {
				cov = append(cov, float64(cnt[r])/float64(local[r]))
			}
		}
		res.covered = append(res.covered, cov)
	}
	res.regions = len(areas)
	res.imageAUROC, res.imageAP, res.imageF1, res.imageF1Thr, _ = bruteBinary(imgs, nil, lim)
	if areas == nil {
		areas = []int{}
	}
	res.pixelAUROC, res.pixelAP, res.pixelF1, res.pixelF1Thr, res.aupro = bruteBinary(pix, areas, lim)
	return res
}

// pixelValues returns the map of im, float32 or float64, in float64.
func pixelValues(im Image) []float64 {
	if im.Map64 != nil {
		return im.Map64
	}
	out := make([]float64, len(im.Map))
	for i, v := range im.Map {
		out[i] = float64(v)
	}
	return out
}

func same(t *testing.T, ctx, name string, got, want *float64) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s: %s: got %v, want %v", ctx, name, fmtp(got), fmtp(want))
	case math.Abs(*got-*want) > 1e-9 || math.IsNaN(*got):
		t.Errorf("%s: %s: got %.17g, want %.17g", ctx, name, *got, *want)
	}
}

func fmtp(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// randomCase draws a small evaluation set with the hard cases the issue lists: ties, constant maps,
// one-pixel defects, diagonal chains, negative scores and both zeros, all-normal sets.
func randomCase(r *rand.Rand) []Image {
	n := 1 + r.IntN(6)
	levels := []int{2, 3, 5, 16, 1 << 20}[r.IntN(5)]
	allNormal := r.IntN(8) == 0
	var out []Image
	kinds := []string{"crack", "hole", "scratch"}
	for i := 0; i < n; i++ {
		w, h := 1+r.IntN(9), 1+r.IntN(9)
		im := Image{W: w, H: h, Map: make([]float32, w*h)}
		constant := r.IntN(6) == 0
		c := float32(r.IntN(levels)) / float32(levels)
		for j := range im.Map {
			v := float32(r.IntN(levels))/float32(levels) - 0.25*float32(r.IntN(2))
			if constant {
				v = c
			}
			if v == 0 && r.IntN(2) == 0 {
				v = float32(math.Copysign(0, -1))
			}
			im.Map[j] = v
		}
		if !allNormal && r.IntN(3) > 0 {
			im.Mask = make([]bool, w*h)
			switch r.IntN(4) {
			case 0: // one pixel
				im.Mask[r.IntN(w*h)] = true
			case 1: // diagonal chain
				x, y := r.IntN(w), r.IntN(h)
				for ; x < w && y < h; x, y = x+1, y+1 {
					im.Mask[y*w+x] = true
				}
			case 2: // random blobs
				p := r.Float64()
				for j := range im.Mask {
					im.Mask[j] = r.Float64() < p
				}
			case 3: // everything, or nothing at all
				v := r.IntN(2) == 0
				for j := range im.Mask {
					im.Mask[j] = v
				}
			}
		}
		if slices.Contains(im.Mask, true) || (!allNormal && r.IntN(5) == 0) {
			im.Label = 1
			im.Kind = kinds[r.IntN(len(kinds))]
		} else {
			im.Kind = "good"
		}
		im.Key = fmt.Sprintf("%s/%03d", im.Kind, i)
		if r.IntN(3) == 0 {
			s := float64(r.IntN(4)) / 4
			im.Score = &s
		}
		out = append(out, im)
	}
	return out
}

func compareBrute(t *testing.T, ctx string, images []Image, opt Options) *sm.Result {
	t.Helper()
	res, err := Compute(images, opt)
	if err != nil {
		t.Fatalf("%s: %v", ctx, err)
	}
	lim := new(big.Rat)
	lim.SetString(fmt.Sprint(res.FPRLimit))
	b := brute(images, lim, res.PixelF1MaxThreshold)
	same(t, ctx, "image_auroc", res.ImageAUROC, b.imageAUROC)
	same(t, ctx, "image_ap", res.ImageAP, b.imageAP)
	same(t, ctx, "image_f1_max", res.ImageF1Max, b.imageF1)
	same(t, ctx, "image_f1_max_threshold", res.ImageF1MaxThreshold, b.imageF1Thr)
	same(t, ctx, "pixel_auroc", res.PixelAUROC, b.pixelAUROC)
	same(t, ctx, "pixel_ap", res.PixelAP, b.pixelAP)
	same(t, ctx, "pixel_f1_max", res.PixelF1Max, b.pixelF1)
	same(t, ctx, "pixel_f1_max_threshold", res.PixelF1MaxThreshold, b.pixelF1Thr)
	same(t, ctx, "pixel_aupro", res.PixelAUPRO, b.aupro)
	if res.Counts.Regions != int64(b.regions) {
		t.Errorf("%s: regions: got %d want %d", ctx, res.Counts.Regions, b.regions)
	}
	undefined := 0
	for _, p := range []*float64{res.ImageAUROC, res.ImageAP, res.ImageF1Max, res.PixelAUROC, res.PixelAP, res.PixelF1Max, res.PixelAUPRO} {
		if p == nil {
			undefined++
		}
	}
	if len(res.Warnings) != undefined {
		t.Errorf("%s: %d undefined metrics but warnings %q", ctx, undefined, res.Warnings)
	}
	if opt.Detail {
		byKey := map[string]int{}
		for i, im := range images {
			byKey[im.Key] = i
		}
		for _, d := range res.PerImage {
			i := byKey[d.Key]
			same(t, ctx+" "+d.Key, "per-image pixel_ap", d.PixelAP, b.perImageAP[i])
			if len(d.Regions) != len(b.covered[i]) {
				t.Errorf("%s %s: %d regions, want %d", ctx, d.Key, len(d.Regions), len(b.covered[i]))
				continue
			}
			for r := range d.Regions {
				if d.Regions[r].Covered != b.covered[i][r] {
					t.Errorf("%s %s: region %d covered %v, want %v", ctx, d.Key, r, d.Regions[r].Covered, b.covered[i][r])
				}
			}
		}
	}
	return res
}

var defaultSmallSet = smallSet

func TestCompute_BruteForce_Random(t *testing.T) {
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(1, 2))
	cases := 400
	if raceEnabled {
		cases = 80
	}
	for c := 0; c < cases; c++ {
		images := randomCase(r)
		ctx := fmt.Sprintf("case %d", c)
		// First through the 65536-bucket path, then through the small-set comparison sort.
		smallSet = 0
		compareBrute(t, ctx+" (buckets)", images, Options{Detail: true})
		smallSet = defaultSmallSet
		res := compareBrute(t, ctx, images, Options{Detail: true})
		if t.Failed() {
			dump, _ := json.Marshal(images)
			t.Fatalf("%s failed on %s", ctx, dump)
		}
		// Order and worker count must not change a single bit.
		shuffled := slices.Clone(images)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		res2, err := Compute(shuffled, Options{Detail: true, Workers: 1 + r.IntN(4)})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(res)
		b, _ := json.Marshal(res2)
		if string(a) != string(b) {
			t.Fatalf("%s: result depends on order/workers:\n%s\n%s", ctx, a, b)
		}
		// Per kind: the same metrics on good + that kind.
		for _, k := range res.PerKind {
			var sub []Image
			for _, im := range images {
				if im.Label == 0 || im.Kind == k.Kind {
					sub = append(sub, im)
				}
			}
			kr, err := Compute(sub, Options{NoPerKind: true})
			if err != nil {
				t.Fatal(err)
			}
			same(t, ctx+" kind "+k.Kind, "image_auroc", k.ImageAUROC, kr.ImageAUROC)
			same(t, ctx+" kind "+k.Kind, "pixel_auroc", k.PixelAUROC, kr.PixelAUROC)
			same(t, ctx+" kind "+k.Kind, "pixel_ap", k.PixelAP, kr.PixelAP)
			same(t, ctx+" kind "+k.Kind, "pixel_aupro", k.PixelAUPRO, kr.PixelAUPRO)
		}
	}
}

// TestCompute_BruteForce_FPRExactlyAtLimit: 10 normal pixels with distinct scores put an FPR point exactly
// on 0.3 (no interpolation), then the same with the limit between points.
func TestCompute_BruteForce_FPRExactlyAtLimit(t *testing.T) {
	im := Image{Key: "crack/000", Kind: "crack", Label: 1, W: 4, H: 4, Map: make([]float32, 16), Mask: make([]bool, 16)}
	for i := range im.Map {
		im.Map[i] = float32(i) / 16
	}
	for _, i := range []int{15, 13, 11, 10, 5, 0} { // one region through diagonal links; 10 normal pixels
		im.Mask[i] = true
	}
	for _, lim := range []float64{0.3, 0.25, 1} {
		res := compareBrute(t, fmt.Sprint("limit ", lim), []Image{im}, Options{FPRLimit: lim})
		if lim == 0.3 {
			c := res.Curves.PixelPRO
			if c.X[len(c.X)-1] != 0.3 || c.Threshold[len(c.X)-1] == nil {
				t.Errorf("PRO curve should end on the real point at FPR 0.3: %v", c.X)
			}
		}
	}
}

// TestCompute_BruteForce_LargeBucket exercises the radix path: thousands of pixels share the top 16 bits.
func TestCompute_BruteForce_LargeBucket(t *testing.T) {
	smallSet = 0
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(3, 4))
	var images []Image
	for i := 0; i < 3; i++ {
		w, h := 40, 30
		im := Image{Key: fmt.Sprintf("k/%d", i), Kind: "k", Label: 1, W: w, H: h, Map: make([]float32, w*h), Mask: make([]bool, w*h)}
		for j := range im.Map {
			im.Map[j] = math.Float32frombits(0x3f000000 | uint32(r.IntN(1<<12))) // 0.5 + tiny, heavy ties
			im.Mask[j] = (j/w+j%w)%7 == 0 || r.IntN(20) == 0
		}
		images = append(images, im)
	}
	images[0].Label, images[0].Kind, images[0].Key = 0, "good", "good/0"
	images[0].Mask = nil
	compareBrute(t, "large bucket", images, Options{Detail: true})
}

func TestCompute_AllNormal_NullWithWarnings(t *testing.T) {
	im := Image{Key: "good/0", Kind: "good", W: 2, H: 2, Map: []float32{0, 1, 2, 3}}
	res, err := Compute([]Image{im}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*float64{"image_auroc": res.ImageAUROC, "pixel_auroc": res.PixelAUROC, "pixel_ap": res.PixelAP, "pixel_aupro": res.PixelAUPRO, "pixel_f1_max": res.PixelF1Max} {
		if p != nil {
			t.Errorf("%s = %v, want null", name, *p)
		}
	}
	if len(res.Warnings) != 7 {
		t.Errorf("warnings: %q", res.Warnings)
	}
	// encoding/json refuses NaN, so this also proves no metric is NaN.
	if _, err := json.Marshal(res); err != nil {
		t.Errorf("marshal: %v", err)
	}
}

func TestCompute_BadInput_Errors(t *testing.T) {
	good := func() Image { return Image{Key: "a/0", Kind: "a", Label: 1, W: 2, H: 1, Map: []float32{0, 1}} }
	cases := map[string]func(*Image){
		"nan":         func(im *Image) { im.Map[1] = float32(math.NaN()) },
		"inf":         func(im *Image) { im.Map[0] = float32(math.Inf(1)) },
		"short map":   func(im *Image) { im.Map = im.Map[:1] },
		"mask size":   func(im *Image) { im.Mask = []bool{true} },
		"zero size":   func(im *Image) { im.W = 0 },
		"label":       func(im *Image) { im.Label = 2 },
		"score nan":   func(im *Image) { s := math.NaN(); im.Score = &s },
		"neg size":    func(im *Image) { im.W, im.H = -2, -1 },
		"huge size":   func(im *Image) { im.W, im.H = 1<<20, 1<<20 },
		"nil map":     func(im *Image) { im.Map = nil },
		"fpr limit 0": nil,
	}
	for name, f := range cases {
		im := good()
		opt := Options{}
		if f == nil {
			opt.FPRLimit = -1
		} else {
			f(&im)
		}
		if _, err := Compute([]Image{im}, opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Compute([]Image{good(), good()}, Options{}); err == nil {
		t.Error("duplicate key: no error")
	}
	if _, err := Compute(nil, Options{}); err == nil {
		t.Error("no images: no error")
	}
}

func TestComponents_DiagonalChain_OneRegion(t *testing.T) {
	// 5x5 diagonal: one region under 8-connectivity, five under 4.
	mask := make([]bool, 25)
	for i := 0; i < 5; i++ {
		mask[i*5+i] = true
	}
	mask[4] = true // a separate corner pixel
	areas, labels := components(mask, 5, 5, 6, &scratch{})
	if len(areas) != 2 || areas[0] != 5 && areas[1] != 5 {
		t.Fatalf("areas %v", areas)
	}
	if len(labels) != 6 {
		t.Fatalf("labels %v", labels)
	}
}

func TestSortLow16_Random_MatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var tmp []uint32
	var tmp64 []uint64
	for _, n := range []int{0, 1, 2, 255, 256, 1000, 70000} {
		a := make([]uint32, n)
		b := make([]uint64, n)
		for i := range a {
			a[i] = 0xabcd0000 | uint32(r.IntN(1<<16))
			if n == 70000 {
				a[i] &^= 0xff // only the high digit varies: one pass skipped
			}
			b[i] = uint64(a[i])<<32 | uint64(r.Uint32())
		}
		want := slices.Clone(a)
		slices.Sort(want)
		sortLow16(a, &tmp)
		if !slices.Equal(a, want) {
			t.Fatalf("n=%d: uint32 radix sort wrong", n)
		}
		sortLow16Hi(b, &tmp64)
		for i := 1; i < n; i++ {
			if b[i]>>32 < b[i-1]>>32 {
				t.Fatalf("n=%d: uint64 radix sort wrong at %d", n, i)
			}
		}
	}
}

func TestKey_Order_ZerosShareKey(t *testing.T) {
	vals := []float32{float32(math.Inf(-1)), -3, -1e-30, 0, 1e-45, 0.5, 2, float32(math.Inf(1))}
	for i := 1; i < len(vals); i++ {
		if key(vals[i-1]) >= key(vals[i]) {
			t.Errorf("key(%v) >= key(%v)", vals[i-1], vals[i])
		}
		if unkey(key(vals[i])) != vals[i] {
			t.Errorf("unkey(key(%v)) = %v", vals[i], unkey(key(vals[i])))
		}
	}
	if key(float32(math.Copysign(0, -1))) != key(0) {
		t.Error("-0 and +0 have different keys")
	}
}

func TestCompute_Curves_BoundedAndMonotone(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	w, h := 200, 100
	var images []Image
	for i := 0; i < 4; i++ {
		im := Image{Key: fmt.Sprintf("x/%d", i), Kind: "x", Label: i % 2, W: w, H: h, Map: make([]float32, w*h)}
		if i%2 == 1 {
			im.Mask = make([]bool, w*h)
		}
		for j := range im.Map {
			im.Map[j] = r.Float32()
			if im.Mask != nil && j%w < 50 {
				im.Mask[j] = true
				im.Map[j] += 0.3
			}
		}
		images = append(images, im)
	}
	res, err := Compute(images, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]sm.Curve{"roc": res.Curves.PixelROC, "pr": res.Curves.PixelPR, "pro": res.Curves.PixelPRO} {
		if len(c.X) < 100 || len(c.X) > sm.MaxCurvePoints || len(c.Y) != len(c.X) || len(c.Threshold) != len(c.X) {
			t.Errorf("%s: %d points", name, len(c.X))
		}
		for i := 1; i < len(c.X); i++ {
			if c.X[i] < c.X[i-1] {
				t.Errorf("%s: x not monotone at %d", name, i)
				break
			}
		}
	}
	roc := res.Curves.PixelROC
	if roc.X[len(roc.X)-1] != 1 || roc.Y[len(roc.Y)-1] != 1 {
		t.Errorf("ROC ends at (%v, %v)", roc.X[len(roc.X)-1], roc.Y[len(roc.Y)-1])
	}
	pro := res.Curves.PixelPRO
	if pro.X[len(pro.X)-1] != 0.3 {
		t.Errorf("PRO ends at FPR %v, want 0.3", pro.X[len(pro.X)-1])
	}
}

// TestCompute_PerKind_EmptyKindName: a defect kind named "" is a kind of its own, not part of the normal set.
func TestCompute_PerKind_EmptyKindName(t *testing.T) {
	good := Image{Key: "good/0", Kind: "good", W: 2, H: 1, Map: []float32{0.1, 0.2}}
	a := Image{Key: "/0", Kind: "", Label: 1, W: 2, H: 1, Map: []float32{0.9, 0.1}, Mask: []bool{true, false}}
	b := Image{Key: "b/0", Kind: "b", Label: 1, W: 2, H: 1, Map: []float32{0.05, 0.3}, Mask: []bool{true, false}}
	res, err := Compute([]Image{good, a, b}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.PerKind) != 2 || res.PerKind[0].Kind != "" || res.PerKind[0].Images != 2 {
		t.Fatalf("per kind: %+v", res.PerKind)
	}
	if au := res.PerKind[0].PixelAUROC; au == nil || *au != 1 {
		t.Errorf("kind \"\": pixel AUROC %v, want 1", fmtp(au))
	}
}
