package metrics

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchSet draws n w x h images: a quarter good, the rest of three defect kinds with one to three disc
// defects each; maps are noise with the defects raised, so scores are nearly all distinct, as with real
// smoothed anomaly maps.
func benchSet(n, w, h int) []Image {
	r := rand.New(rand.NewPCG(uint64(n), uint64(w)))
	kinds := []string{"good", "crack", "hole", "scratch"}
	images := make([]Image, n)
	for i := range images {
		k := kinds[i%4]
		im := Image{Key: fmt.Sprintf("%s/%03d", k, i), Kind: k, W: w, H: h, Map: make([]float32, w*h)}
		if k != "good" {
			im.Label = 1
			im.Mask = make([]bool, w*h)
			for d := 0; d <= r.IntN(3); d++ {
				cx, cy, rad := r.IntN(w), r.IntN(h), 2+r.IntN(w/10)
				for y := max(0, cy-rad); y < min(h, cy+rad); y++ {
					for x := max(0, cx-rad); x < min(w, cx+rad); x++ {
						if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= rad*rad {
							im.Mask[y*w+x] = true
						}
					}
				}
			}
		}
		for j := range im.Map {
			v := 0.3 * r.Float32()
			if im.Mask != nil && im.Mask[j] {
				v += 0.25
			}
			im.Map[j] = v
		}
		images[i] = im
	}
	return images
}

func benchCompute(b *testing.B, n, w, h int, opt Options) {
	images := benchSet(n, w, h)
	b.SetBytes(int64(n * w * h * 4))
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		if _, err := Compute(images, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// All metrics, per kind included: the figures of the issue.
func BenchmarkCompute_256x256x100(b *testing.B)  { benchCompute(b, 100, 256, 256, Options{}) }
func BenchmarkCompute_1024x1024x20(b *testing.B) { benchCompute(b, 20, 1024, 1024, Options{}) }
func BenchmarkCompute_256x256x100_NoPerKind(b *testing.B) {
	benchCompute(b, 100, 256, 256, Options{NoPerKind: true})
}
func BenchmarkCompute_1024x1024x20_NoPerKind(b *testing.B) {
	benchCompute(b, 20, 1024, 1024, Options{NoPerKind: true})
}
func BenchmarkCompute_1024x1024x20_Detail(b *testing.B) {
	benchCompute(b, 20, 1024, 1024, Options{Detail: true})
}

// The same sets as float64 maps, the cost of ranking at full precision (benchCompute64 reports it).
func BenchmarkCompute64_256x256x100(b *testing.B)  { benchCompute64(b, 100, 256, 256, Options{}) }
func BenchmarkCompute64_1024x1024x20(b *testing.B) { benchCompute64(b, 20, 1024, 1024, Options{}) }

func benchCompute64(b *testing.B, n, w, h int, opt Options) {
	images := benchSet(n, w, h)
	for i := range images {
		m := make([]float64, len(images[i].Map))
		for j, v := range images[i].Map {
			m[j] = float64(v) + float64(j%7)*1e-12 // apart in float64, not in float32
		}
		images[i].Map, images[i].Map64 = nil, m
	}
	b.SetBytes(int64(n * w * h * 8))
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		if _, err := Compute(images, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// The cost of streaming: Add of 900x900 maps and a Partial after each.
func BenchmarkAccumulator_AddPartial_900x900x100(b *testing.B) {
	images := benchSet(100, 900, 900)
	b.ResetTimer()
	cpu := processCPU()
	defer func() { b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op") }()
	for i := 0; i < b.N; i++ {
		acc := NewAccumulator(Options{})
		for _, im := range images {
			if err := acc.Add(im); err != nil {
				b.Fatal(err)
			}
			acc.Partial()
		}
	}
}
