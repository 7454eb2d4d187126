//go:build unix

package inference

import (
	"image"
	"math/rand"
	"syscall"
	"testing"
	"time"
)

// reportCPU adds the process CPU time per iteration (user + system, garbage collection included) to a
// benchmark's result: on a shared machine it is steadier than the wall time that ns/op measures.
// Use it as `defer reportCPU(b)()` before the loop.
func reportCPU(b *testing.B) func() {
	c0 := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU()-c0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Pre-processing of one 900x900 image (MVTec AD's size) to the model input, per decoded type: today's
// path (RGB8 + resample.Preprocess) against the direct one. `make bench-image-path` runs it.
func BenchmarkPreprocess(b *testing.B) {
	r := rand.New(rand.NewSource(5))
	rect := image.Rect(0, 0, 900, 900)
	imgs := testImages(r, rect)
	opaque := image.NewRGBA(rect)
	smooth(r, opaque.Pix, 4*900)
	for i := 3; i < len(opaque.Pix); i += 4 {
		opaque.Pix[i] = 255
	}
	imgs["RGBA"] = opaque // what an RGB PNG decodes to
	const size = 256
	mean, std := [3]float32{0.5, 0.5, 0.5}, [3]float32{0.5, 0.5, 0.5}
	for _, name := range []string{"RGBA", "NRGBA", "Gray", "YCbCr420", "YCbCr444", "YCbCr422", "Paletted", "Gray16"} {
		img := imgs[name]
		b.Run(name+"/before", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := referencePreprocess(img, size, mean, std); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/after", func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]float32, 3*size*size)
			defer reportCPU(b)()
			for b.Loop() {
				if _, _, err := preprocessInto(dst, img, size, mean, std); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
