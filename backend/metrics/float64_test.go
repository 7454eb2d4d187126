package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// toMap64 returns images with their float32 maps moved, exactly, to Map64 where pick says so.
func toMap64(images []Image, pick func(i int) bool) []Image {
	out := slices.Clone(images)
	for i := range out {
		if out[i].Map != nil && pick(i) {
			out[i].Map64 = pixelValues(out[i])
			out[i].Map = nil
		}
	}
	return out
}

func mustJSON(t *testing.T, res *sm.Result) string {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCompute_Map64_Float32ExactValues_IdenticalToMap: float64 maps whose values are float32 values go the
// code path and must give the float32 engine's result bit for bit (thresholds, curves, per kind, per image),
// whether all images or some carry Map64, through the bucket path and the small-set sort.
func TestCompute_Map64_Float32ExactValues_IdenticalToMap(t *testing.T) {
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(11, 12))
	cases := 100
	if raceEnabled {
		cases = 25
	}
	for c := 0; c < cases; c++ {
		images := randomCase(r)
		compareBrute(t, fmt.Sprintf("case %d all Map64", c), toMap64(images, func(int) bool { return true }), Options{Detail: true})
		for _, small := range []int{0, defaultSmallSet} {
			smallSet = small
			want, err := Compute(images, Options{Detail: true})
			if err != nil {
				t.Fatal(err)
			}
			all := toMap64(images, func(int) bool { return true })
			mixed := toMap64(images, func(int) bool { return r.IntN(2) == 0 })
			for name, set := range map[string][]Image{"all Map64": all, "mixed": mixed} {
				got, err := Compute(set, Options{Detail: true, Workers: 1 + r.IntN(3)})
				if err != nil {
					t.Fatalf("case %d %s: %v", c, name, err)
				}
				if a, b := mustJSON(t, got), mustJSON(t, want); a != b {
					t.Fatalf("case %d %s (smallSet %d): Map64 result differs from Map:\n%s\n%s", c, name, small, a, b)
				}
			}
		}
	}
}

// closeCase: good images score in (1-2.5e-8, 1) below every defect image, and defect pixels above normal
// ones, all closer than float32 resolves near 1.
func closeCase() []Image {
	var images []Image
	// float32 rounds everything in (1 - 2.98e-8, 1] to 1.
	step := 5e-11
	base := 1 - 2.5e-8
	for i := 0; i < 4; i++ {
		im := Image{Key: fmt.Sprintf("good/%d", i), Kind: "good", W: 3, H: 2, Map64: make([]float64, 6)}
		for j := range im.Map64 {
			im.Map64[j] = base + float64(i*6+j)*step
		}
		images = append(images, im)
	}
	for i := 0; i < 4; i++ {
		im := Image{Key: fmt.Sprintf("crack/%d", i), Kind: "crack", Label: 1, W: 3, H: 2, Map64: make([]float64, 6), Mask: make([]bool, 6)}
		for j := range im.Map64 {
			im.Map64[j] = base + float64(100+i*6+j)*step
			if j >= 3 {
				im.Mask[j] = true
				im.Map64[j] += 300 * step
			}
		}
		images = append(images, im)
	}
	return images
}

func TestCompute_Map64_CloseValues_RankedApart(t *testing.T) {
	images := closeCase()
	if float32(images[0].Map64[0]) != float32(images[len(images)-1].Map64[5]) {
		t.Fatal("test data: the values should round to one float32")
	}
	res := compareBrute(t, "close values", images, Options{Detail: true})
	for name, v := range map[string]*float64{"image_auroc": res.ImageAUROC, "pixel_auroc": res.PixelAUROC, "pixel_ap": res.PixelAP, "image_ap": res.ImageAP} {
		if v == nil || *v != 1 {
			t.Errorf("%s = %v, want 1", name, fmtp(v))
		}
	}
	if res.Counts.DistinctPixelScores != 48 {
		t.Errorf("distinct pixel scores %d, want 48", res.Counts.DistinctPixelScores)
	}
	// The same maps rounded to float32: every score merges, which is what Map64 is for.
	rounded := slices.Clone(images)
	for i := range rounded {
		rounded[i].Map = make([]float32, len(rounded[i].Map64))
		for j, v := range rounded[i].Map64 {
			rounded[i].Map[j] = float32(v)
		}
		rounded[i].Map64 = nil
	}
	r32, err := Compute(rounded, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if *r32.ImageAUROC != 0.5 || r32.Counts.DistinctPixelScores != 1 {
		t.Errorf("float32: image AUROC %v with %d distinct scores, want 0.5 with 1", *r32.ImageAUROC, r32.Counts.DistinctPixelScores)
	}
	// The F1-max threshold is the lowest defect score, as a float64 value of the maps.
	lowest := math.Inf(1)
	for _, im := range images[4:] {
		for j, v := range im.Map64 {
			if im.Mask[j] {
				lowest = min(lowest, v)
			}
		}
	}
	if res.PixelF1MaxThreshold == nil || *res.PixelF1MaxThreshold != lowest {
		t.Errorf("pixel F1-max threshold %v, want %.17g", fmtp(res.PixelF1MaxThreshold), lowest)
	}
	checkThresholdsAreMapValues(t, "close values", images, res)
}

// checkThresholdsAreMapValues: every pixel threshold of res is a value of some map, and per-image maxima
// are the maps' own maxima.
func checkThresholdsAreMapValues(t *testing.T, ctx string, images []Image, res *sm.Result) {
	t.Helper()
	vals := map[float64]bool{}
	maxOf := map[string]float64{}
	for _, im := range images {
		v := pixelValues(im)
		for _, x := range v {
			vals[x] = true
		}
		maxOf[im.Key] = slices.Max(v)
	}
	if p := res.PixelF1MaxThreshold; p != nil && !vals[*p] {
		t.Errorf("%s: pixel F1-max threshold %.17g is no map value", ctx, *p)
	}
	for name, c := range map[string]sm.Curve{"roc": res.Curves.PixelROC, "pr": res.Curves.PixelPR, "pro": res.Curves.PixelPRO} {
		for i, p := range c.Threshold {
			if p != nil && !vals[*p] {
				t.Errorf("%s: %s curve threshold %d = %.17g is no map value", ctx, name, i, *p)
			}
		}
	}
	for _, d := range res.PerImage {
		if d.MaxScore != maxOf[d.Key] {
			t.Errorf("%s: %s max score %.17g, want %.17g", ctx, d.Key, d.MaxScore, maxOf[d.Key])
		}
	}
}

func TestCompute_Map64_BeyondFloat32Range_Evaluates(t *testing.T) {
	good := Image{Key: "good/0", Kind: "good", W: 3, H: 2, Map64: []float64{-1e39, -1e300, 0, 1e38, 2e38, 1e39}}
	bad := Image{Key: "dent/0", Kind: "dent", Label: 1, W: 3, H: 2, Map64: []float64{-1e39, 5, 1e39, 3e39, 1e300, 1.5e300},
		Mask: []bool{false, false, false, true, true, true}}
	images := []Image{good, bad}
	res := compareBrute(t, "large values", images, Options{Detail: true})
	if res.PixelAUROC == nil || *res.PixelAUROC != 1 || res.PixelF1Max == nil || *res.PixelF1Max != 1 {
		t.Errorf("pixel AUROC %v, F1-max %v, want 1 and 1", fmtp(res.PixelAUROC), fmtp(res.PixelF1Max))
	}
	if res.PixelF1MaxThreshold == nil || *res.PixelF1MaxThreshold != 3e39 {
		t.Errorf("pixel F1-max threshold %v, want 3e39", fmtp(res.PixelF1MaxThreshold))
	}
	if res.ImageF1MaxThreshold == nil || *res.ImageF1MaxThreshold != 1.5e300 {
		t.Errorf("image F1-max threshold %v, want 1.5e300 (the max of the map)", fmtp(res.ImageF1MaxThreshold))
	}
	// -1e39 and 1e39 appear in both images: one score each.
	if res.Counts.DistinctPixelScores != 10 {
		t.Errorf("distinct pixel scores %d, want 10", res.Counts.DistinctPixelScores)
	}
	checkThresholdsAreMapValues(t, "large values", images, res)
	if _, err := json.Marshal(res); err != nil {
		t.Errorf("marshal: %v", err)
	}
}

func TestCompute_Map64_MixedWithMap_MatchesBrute(t *testing.T) {
	images := closeCase()
	// float32 images between and around the float64 scores, sharing some values with them.
	images = append(images,
		Image{Key: "good/9", Kind: "good", W: 2, H: 2, Map: []float32{1, 0.5, float32(math.Copysign(0, -1)), 2}},
		Image{Key: "hole/0", Kind: "hole", Label: 1, W: 2, H: 2, Map: []float32{1, 0.25, 3, 0}, Mask: []bool{true, false, true, false}},
	)
	images[0].Map64[0] = 0.5 // a float64 value equal to a float32 one: a tie across the two kinds of map
	images[1].Map64[1] = 0   // +0 in a Map64, -0 in a Map: one score
	res := compareBrute(t, "mixed", images, Options{Detail: true})
	checkThresholdsAreMapValues(t, "mixed", images, res)
	// Per kind: the same as an evaluation of the normal images plus that kind.
	for _, k := range res.PerKind {
		var sub []Image
		for _, im := range images {
			if im.Label == 0 || im.Kind == k.Kind {
				sub = append(sub, im)
			}
		}
		kr := compareBrute(t, "mixed kind "+k.Kind, sub, Options{NoPerKind: true})
		same(t, "mixed kind "+k.Kind, "pixel_auroc", k.PixelAUROC, kr.PixelAUROC)
		same(t, "mixed kind "+k.Kind, "pixel_aupro", k.PixelAUPRO, kr.PixelAUPRO)
	}
}

// randomCase64 draws float64 maps with what float32 would lose: clusters of values a few float64 ulps
// apart, values beyond the float32 range, ties, both zeros; some images keep a float32 map.
func randomCase64(r *rand.Rand) []Image {
	images := randomCase(r)
	centers := []float64{1, 1 - 1e-7, -3e-40, 1e39, -1e39, 1e-300}
	c := centers[r.IntN(len(centers))]
	for i := range images {
		if r.IntN(4) == 0 {
			continue // stays a float32 map
		}
		m := make([]float64, len(images[i].Map))
		for j, v := range images[i].Map {
			switch r.IntN(4) {
			case 0:
				m[j] = float64(v) // shared with float32 maps
			case 1:
				m[j] = math.Copysign(0, float64(-r.IntN(2)))
			default:
				m[j] = c
				for k := r.IntN(6); k > 0; k-- {
					m[j] = math.Nextafter(m[j], math.Inf(1))
				}
			}
		}
		images[i].Map, images[i].Map64 = nil, m
	}
	return images
}

func TestCompute_Map64_BruteForce_Random(t *testing.T) {
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(13, 14))
	cases := 300
	if raceEnabled {
		cases = 60
	}
	for c := 0; c < cases; c++ {
		images := randomCase64(r)
		ctx := fmt.Sprintf("case %d", c)
		smallSet = 0
		compareBrute(t, ctx+" (buckets)", images, Options{Detail: true})
		smallSet = defaultSmallSet
		res := compareBrute(t, ctx, images, Options{Detail: true})
		checkThresholdsAreMapValues(t, ctx, images, res)
		if t.Failed() {
			dump, _ := json.Marshal(images)
			t.Fatalf("%s failed on %s", ctx, dump)
		}
		shuffled := slices.Clone(images)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		res2, err := Compute(shuffled, Options{Detail: true, Workers: 1 + r.IntN(4)})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := mustJSON(t, res), mustJSON(t, res2); a != b {
			t.Fatalf("%s: result depends on order/workers:\n%s\n%s", ctx, a, b)
		}
	}
}

func TestCompute_Map64_BadInput_Errors(t *testing.T) {
	good := func() Image { return Image{Key: "a/0", Kind: "a", Label: 1, W: 2, H: 1, Map64: []float64{0, 1e39}} }
	cases := map[string]func(*Image){
		"both maps":    func(im *Image) { im.Map = []float32{0, 1} },
		"no map":       func(im *Image) { im.Map64 = nil },
		"nan":          func(im *Image) { im.Map64[1] = math.NaN() },
		"inf":          func(im *Image) { im.Map64[0] = math.Inf(-1) },
		"short map":    func(im *Image) { im.Map64 = im.Map64[:1] },
		"empty map":    func(im *Image) { im.Map64 = []float64{} },
		"mask size":    func(im *Image) { im.Mask = []bool{true} },
		"score is inf": func(im *Image) { s := math.Inf(1); im.Score = &s },
	}
	for name, f := range cases {
		im := good()
		f(&im)
		if _, err := Compute([]Image{im}, Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
		if err := NewAccumulator(Options{}).Add(im); err == nil {
			t.Errorf("%s: Add: no error", name)
		}
	}
	if _, err := Compute([]Image{good()}, Options{}); err != nil {
		t.Errorf("good image: %v", err)
	}
}

func TestCodeOf_RankOf_OrderAndRoundTrip(t *testing.T) {
	var ranks []int
	for _, r := range []int{0, 1, 2, skipKey - codeBase - 2, skipKey - codeBase - 1, skipKey - codeBase, skipKey - codeBase + 1,
		1 << 24, 1 << 31, int(MaxDistinct64 - 2), int(MaxDistinct64 - 1)} {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	for i, r := range ranks {
		c := codeOf(r)
		if math.IsNaN(float64(c)) || math.IsInf(float64(c), 0) {
			t.Fatalf("code of rank %d is %v, not finite", r, c)
		}
		if got := rankOf(c); got != r {
			t.Errorf("rankOf(codeOf(%d)) = %d", r, got)
		}
		if i > 0 {
			p := ranks[i-1]
			if key(codeOf(p)) >= key(c) || !(codeOf(p) < c) {
				t.Errorf("codes of ranks %d and %d are out of order: %v, %v", p, r, codeOf(p), c)
			}
			if r == p+1 && key(c) != key(codeOf(p))+1 && r != skipKey-codeBase {
				t.Errorf("consecutive ranks %d, %d have keys %#x, %#x", p, r, key(codeOf(p)), key(c))
			}
		}
	}
	if codeOf(int(MaxDistinct64-1)) != math.MaxFloat32 || codeOf(0) != -math.MaxFloat32 {
		t.Errorf("code range [%v, %v], want the finite float32 range", codeOf(0), codeOf(int(MaxDistinct64-1)))
	}
}

func TestAccumulator_Map64_FinalEqualsCompute(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for c := 0; c < 20; c++ {
		images := randomCase64(r)
		if c == 0 {
			images = append(closeCase(), Image{Key: "dent/0", Kind: "dent", Label: 1, W: 2, H: 1, Map64: []float64{1e39, -1e39}, Mask: []bool{true, false}})
		}
		acc := NewAccumulator(Options{Detail: true})
		for i := len(images) - 1; i >= 0; i-- {
			if err := acc.Add(images[i]); err != nil {
				t.Fatal(err)
			}
			p := acc.Partial()
			if !p.Partial || !p.Estimate {
				t.Fatalf("partial result not labelled")
			}
			mustJSON(t, p) // no infinite threshold from values beyond float32
		}
		f, err := acc.Final()
		if err != nil {
			t.Fatal(err)
		}
		want, err := Compute(images, Options{Detail: true})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := mustJSON(t, f), mustJSON(t, want); a != b {
			t.Fatalf("case %d: Final differs from Compute:\n%s\n%s", c, a, b)
		}
	}
}

// TestEncode_ManyImages_MergesRuns: chunks large enough for the radix sort, more chunks than two, odd
// counts, values shared across chunks, both signs, both zeros and values far apart (skewed buckets).
func TestEncode_ManyImages_MergesRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	var preps []*prepared
	var want []float64
	for i := 0; i < 7; i++ {
		im := &Image{Key: fmt.Sprint(i), W: 20, H: 15, Map64: make([]float64, 300)}
		if i == 3 {
			im.Map64, im.Map = nil, make([]float32, 300)
		}
		for j := 0; j < 300; j++ {
			v := float64(r.IntN(400)-100) * 1e-9
			switch r.IntN(10) {
			case 0:
				v = math.Copysign(0, -1)
			case 1:
				v = []float64{1e300, -1e39, 7, 1 - 1e-16}[r.IntN(4)]
			}
			if im.Map != nil {
				im.Map[j] = float32(v)
				v = float64(float32(v))
			} else {
				im.Map64[j] = v
			}
			want = append(want, v+0)
		}
		preps = append(preps, &prepared{img: im})
	}
	slices.Sort(want)
	want = slices.Compact(want)
	for _, workers := range []int{1, 2, 3, 7} {
		out, cb, err := encode(preps, workers)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float64, len(cb.keys))
		for i, k := range cb.keys {
			got[i] = unkey64(k)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("workers %d: values %v, want %v", workers, got, want)
		}
		for i, p := range out {
			vals := pixelValues(*preps[i].img)
			for j, c := range p.img.Map {
				if cb.value(float64(c)) != vals[j] {
					t.Fatalf("workers %d: image %d pixel %d decodes to %v, want %v", workers, i, j, cb.value(float64(c)), vals[j])
				}
			}
		}
	}
}

func TestSortKeys_Random_MatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{0, 1, 255, 256, 1000, 5000} {
		a := make([]uint64, n)
		for i := range a {
			a[i] = key64(float64(r.IntN(1000)) * 1e-3) // high bytes mostly equal: skipped passes
			if n == 5000 {
				a[i] = r.Uint64()
			}
		}
		want := slices.Clone(a)
		slices.Sort(want)
		sortKeys(a, make([]uint64, n))
		if !slices.Equal(a, want) {
			t.Fatalf("n=%d: radix sort wrong", n)
		}
	}
}

func TestKey64_Order_ZerosShareKey(t *testing.T) {
	vals := []float64{math.Inf(-1), -1e300, -1e-320, 0, 5e-324, 1 - 1e-16, 1, 1e39, math.Inf(1)}
	for i := 1; i < len(vals); i++ {
		if key64(vals[i-1]) >= key64(vals[i]) {
			t.Errorf("key64(%v) >= key64(%v)", vals[i-1], vals[i])
		}
		if unkey64(key64(vals[i])) != vals[i] {
			t.Errorf("unkey64(key64(%v)) = %v", vals[i], unkey64(key64(vals[i])))
		}
	}
	if key64(math.Copysign(0, -1)) != key64(0) || math.Signbit(unkey64(key64(math.Copysign(0, -1)))) {
		t.Error("-0 and +0 do not share the key of +0")
	}
}

// TestCodeBook_Buckets_RankEveryKey: both bucketings (by value, by key) find every rank, whichever way the
// keys crowd.
func TestCodeBook_Buckets_RankEveryKey(t *testing.T) {
	cluster := []float64{-1e300, -1, 1e39, 1e300} // a dense cluster and far outliers
	for i := 0; i < 1000; i++ {
		cluster = append(cluster, 0.5+float64(i)*0x1p-52)
	}
	var uniform, octaves []float64
	for i := 0; i < 1000; i++ {
		uniform = append(uniform, float64(i)/1000)
		octaves = append(octaves, math.Ldexp(1+float64(i%4)/4, i/4-200))
	}
	for name, c := range map[string]struct {
		vals []float64
		lin  bool
	}{"cluster": {cluster, false}, "uniform": {uniform, true}, "octaves": {octaves, false},
		"tiny span": {[]float64{0, 5e-324, 1e-323}, false}, "huge span": {[]float64{-1e308, 0, 1e308}, false}} {
		keys := make([]uint64, len(c.vals))
		for i, v := range c.vals {
			keys[i] = key64(v)
		}
		slices.Sort(keys)
		for _, n := range []int{1, 2, 3, len(keys)} {
			cb := newCodeBook(keys[:n])
			if n == len(keys) && cb.lin != c.lin {
				t.Errorf("%s: bucketing by value %v, want %v", name, cb.lin, c.lin)
			}
			modes := []bool{cb.lin}
			if cb.lin {
				modes = append(modes, false) // by key as well
			} else if cb.scale != 0 {
				modes = append(modes, true) // by value as well
			}
			for _, lin := range modes {
				cb.lin = lin
				cb.index()
				codes := make([]float32, n)
				for lo := 0; lo < n; lo += rankBatch {
					hi := min(n, lo+rankBatch)
					cb.ranks(keys[lo:hi], codes[lo:hi])
				}
				for r, code := range codes {
					if code != codeOf(r) {
						t.Fatalf("%s n=%d by value %v: key %d has rank %d", name, n, lin, r, rankOf(code))
					}
				}
			}
		}
	}
}

// TestCompute_Map64_LargeBucket: thousands of codes share a bucket, so the per-bucket radix sort runs on
// codes; float64 scores a few ulps apart, with heavy ties.
func TestCompute_Map64_LargeBucket(t *testing.T) {
	smallSet = 0
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(19, 20))
	var images []Image
	for i := 0; i < 3; i++ {
		w, h := 40, 30
		im := Image{Key: fmt.Sprintf("k/%d", i), Kind: "k", Label: 1, W: w, H: h, Map64: make([]float64, w*h), Mask: make([]bool, w*h)}
		for j := range im.Map64 {
			im.Map64[j] = 0.5 + float64(r.IntN(1<<12))*0x1p-50
			im.Mask[j] = (j/w+j%w)%7 == 0 || r.IntN(20) == 0
		}
		images = append(images, im)
	}
	images[0].Label, images[0].Kind, images[0].Key = 0, "good", "good/0"
	images[0].Mask = nil
	res := compareBrute(t, "large bucket", images, Options{Detail: true})
	if res.Counts.DistinctPixelScores < 2000 {
		t.Errorf("%d distinct scores: the bucket is not large", res.Counts.DistinctPixelScores)
	}
	checkThresholdsAreMapValues(t, "large bucket", images, res)
}
