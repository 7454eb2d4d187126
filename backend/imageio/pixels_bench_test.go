//go:build unix

package imageio

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

// RGB8 (At per pixel for RGBA, YCbCr and palette images) against RGB8Into, per type, 900x900 like MVTec AD.
func BenchmarkRGB8(b *testing.B) {
	r := rand.New(rand.NewSource(2))
	imgs := randomImages(r, image.Rect(0, 0, 900, 900))
	for _, name := range []string{"RGBA-opaque", "RGBA", "NRGBA", "Gray", "YCbCr420", "YCbCr444", "YCbCr422", "Paletted256", "Gray16"} {
		img := imgs[name]
		b.Run(name+"/generic", func(b *testing.B) {
			b.SetBytes(int64(3 * 900 * 900))
			defer reportCPU(b)()
			for b.Loop() {
				RGB8(img)
			}
		})
		b.Run(name+"/direct", func(b *testing.B) {
			b.SetBytes(int64(3 * 900 * 900))
			var buf []uint8
			defer reportCPU(b)()
			for b.Loop() {
				buf, _, _ = RGB8Into(buf, img)
			}
		})
	}
}
