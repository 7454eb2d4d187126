package calibrate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

type memSource []Map

func (s memSource) Len() int                { return len(s) }
func (s memSource) Load(i int) (Map, error) { return s[i], nil }

// TestCalibrate_MeanKStd_HandWorked: pixels 1, 2, 3, 4 and 5 (two images): mean 3, population variance
// (4 + 1 + 0 + 1 + 4) / 5 = 2, std sqrt(2); mean + 3 std = 3 + 3 sqrt(2) = 7.2426..., above every pixel
// (FPR 0). With K = 0 the threshold is the mean, 3: pixels 3, 4, 5 are at or above it (FPR 3/5).
func TestCalibrate_MeanKStd_HandWorked(t *testing.T) {
	src := memSource{{Values32: []float32{1, 2, 3, 4}, Score: 4}, {Values64: []float64{5}, Score: 5}}
	for _, c := range []struct {
		k, thr, fpr float64
	}{{3, 3 + 3*math.Sqrt2, 0}, {0, 3, 0.6}} {
		res, err := Calibrate(src, []Method{{MeanKStd, c.k}})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res.Pixel.Threshold-c.thr) > 1e-15 || res.Pixel.FPR != c.fpr || res.Pixel.Method != fmt.Sprintf("mean-kstd:%v", c.k) {
			t.Errorf("k %v: %+v, want threshold %v FPR %v", c.k, res.Pixel, c.thr, c.fpr)
		}
		n := res.Normal
		if n.Pixels != 5 || n.Images != 2 || n.PixelMean != 3 || n.PixelStd != math.Sqrt2 || n.PixelMin != 1 || n.PixelMax != 5 || n.ScoreMax != 5 {
			t.Errorf("stats %+v", n)
		}
	}
}

// TestCalibrate_ImageFPR_HandWorked: five normal image scores 0.1 .. 0.5. A false-alarm rate of 0.2
// allows one image: the threshold is 0.5 (FPR 1/5); 0.4 allows two: 0.4; 0.1 allows none: just above
// 0.5 (FPR 0); 1 allows all: 0.1.
func TestCalibrate_ImageFPR_HandWorked(t *testing.T) {
	var src memSource
	for _, s := range []float64{0.3, 0.1, 0.5, 0.2, 0.4} {
		src = append(src, Map{Values32: []float32{0}, Score: s})
	}
	for _, c := range []struct{ q, thr, fpr float64 }{{0.2, 0.5, 0.2}, {0.4, 0.4, 0.4}, {0.1, math.Nextafter(0.5, 1), 0}, {1, 0.1, 1}} {
		res, err := Calibrate(src, []Method{{ImageFPR, c.q}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Image.Threshold != c.thr || res.Image.FPR != c.fpr || res.Pixel != nil {
			t.Errorf("q %v: %+v, want %v at FPR %v", c.q, res.Image, c.thr, c.fpr)
		}
	}
}

// refQuantile is the definition, by brute force: among the distinct values, the lowest t whose share of
// values >= t (as a float64 division) is <= q; above the maximum when none.
func refQuantile(vals []float64, q float64) (float64, int64) {
	d := slices.Clone(vals)
	slices.Sort(d)
	d = slices.Compact(d)
	best, bestN := math.Nextafter(slices.Max(vals), math.Inf(1)), int64(0)
	for i := len(d) - 1; i >= 0; i-- {
		var n int64
		for _, v := range vals {
			if v >= d[i] {
				n++
			}
		}
		if float64(n)/float64(len(vals)) <= q {
			best, bestN = d[i], n
		}
	}
	return best, bestN
}

// TestCalibrate_PixelFPR_BruteForce_Random: the streaming quantile against the definition on random maps
// with ties, negative values and both zeros, float32 and float64, with the last-pass bucket limited to a
// few values so that every refinement level runs.
func TestCalibrate_PixelFPR_BruteForce_Random(t *testing.T) {
	defer func(v int64) { collectMax = v }(collectMax)
	r := rand.New(rand.NewPCG(1, 2))
	for c := range 300 {
		collectMax = []int64{1, 4, 1 << 20}[r.IntN(3)]
		var src memSource
		var all []float64
		levels := []int{1, 3, 50, 1 << 30}[r.IntN(4)]
		for range 1 + r.IntN(4) {
			n := 1 + r.IntN(60)
			if r.IntN(2) == 0 {
				m := make([]float32, n)
				for i := range m {
					m[i] = float32(r.IntN(levels))/float32(levels) - 0.3*float32(r.IntN(2))
					if m[i] == 0 && r.IntN(2) == 0 {
						m[i] = float32(math.Copysign(0, -1))
					}
					all = append(all, float64(m[i]))
				}
				src = append(src, Map{Values32: m})
			} else {
				m := make([]float64, n)
				for i := range m {
					m[i] = float64(r.IntN(levels))/float64(levels)*1e3 - 1e-300*float64(r.IntN(2))
					all = append(all, m[i])
				}
				src = append(src, Map{Values64: m})
			}
		}
		q := []float64{0, 0.01, 0.1, 0.5, 1, r.Float64()}[r.IntN(6)]
		res, err := Calibrate(src, []Method{{PixelFPR, q}})
		if err != nil {
			t.Fatal(err)
		}
		want, n := refQuantile(all, q)
		if res.Pixel.Threshold != want || res.Pixel.FPR != float64(n)/float64(len(all)) {
			t.Fatalf("case %d (q %v, collect %d): threshold %v FPR %v, want %v FPR %v", c, q, collectMax, res.Pixel.Threshold, res.Pixel.FPR, want, float64(n)/float64(len(all)))
		}
	}
}

func TestParseMethods(t *testing.T) {
	got, err := ParseMethods("mean-kstd, image-fpr:0.1")
	if err != nil || !slices.Equal(got, []Method{{MeanKStd, 3}, {ImageFPR, 0.1}}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "mean-kstd:3,pixel-fpr:0.1", "image-fpr:2", "pixel-fpr:x", "median"} {
		if _, err := ParseMethods(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCalibrate_Errors(t *testing.T) {
	if _, err := Calibrate(memSource{}, []Method{{MeanKStd, 3}}); err == nil {
		t.Error("no images: no error")
	}
	if _, err := Calibrate(memSource{{Values32: []float32{float32(math.NaN())}}}, []Method{{MeanKStd, 3}}); err == nil {
		t.Error("NaN: no error")
	}
	if _, err := Decode([]byte(`{"kind":"other","version":1}`)); err == nil {
		t.Error("foreign file: no error")
	}
}
