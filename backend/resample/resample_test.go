package resample

import (
	"math"
	"testing"
)

func TestResizeBilinearAA_Constant_StaysConstant(t *testing.T) {
	// Normalised weights keep a flat image flat at every scale, including the image edges where the
	// filter window is cut off.
	for _, sz := range [][4]int{{900, 900, 256, 256}, {37, 11, 64, 64}, {64, 64, 64, 64}, {5, 300, 7, 3}} {
		src := make([]float32, 2*sz[0]*sz[1])
		for i := range src {
			src[i] = 0.25
			if i >= sz[0]*sz[1] {
				src[i] = 0.75
			}
		}
		out, err := ResizeBilinearAA(src, 2, sz[0], sz[1], sz[2], sz[3])
		if err != nil {
			t.Fatal(err)
		}
		n := sz[2] * sz[3]
		for i, v := range out {
			want := float32(0.25)
			if i >= n {
				want = 0.75
			}
			if math.Abs(float64(v-want)) > 1e-6 {
				t.Fatalf("%v: out[%d] = %v, want %v", sz, i, v, want)
			}
		}
	}
}

func TestResizeBilinearAA_Downscale_AveragesAllInputs(t *testing.T) {
	// 4 -> 1 with antialias averages with triangle weights over the whole row (PIL semantics); without
	// antialias it would sample only the middle two pixels. Weights for centre 2, support 4:
	// 1-|j+0.5-2|/4 = 0.625, 0.875, 0.875, 0.625 (sum 3).
	out, err := ResizeBilinearAA([]float32{1, 0, 0, 0}, 1, 4, 1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(0.625 / 3); math.Abs(float64(out[0]-want)) > 1e-7 {
		t.Fatalf("4->1 of [1 0 0 0] = %v, want %v", out[0], want)
	}
}

func TestResizeBilinear_Upscale_MatchesTorch(t *testing.T) {
	// torch.nn.functional.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear",
	// align_corners=False) = [0, 0.25, 0.75, 1].
	out, err := ResizeBilinear([]float32{0, 1}, 1, 2, 1, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0.25, 0.75, 1}
	for i := range want {
		if math.Abs(float64(out[i]-want[i])) > 1e-7 {
			t.Fatalf("got %v, want %v", out, want)
		}
	}
	same, err := ResizeBilinear([]float32{1, 2, 3, 4, 5, 6}, 1, 3, 2, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range same {
		if v != float32(i+1) {
			t.Fatalf("same-size resize changed values: %v", same)
		}
	}
}

func TestResize_BadSizes_Errors(t *testing.T) {
	if _, err := ResizeBilinear(make([]float32, 5), 1, 2, 2, 4, 4); err == nil {
		t.Error("ResizeBilinear with 5 values for 2x2: no error")
	}
	if _, err := ResizeBilinearAA(make([]float32, 4), 1, 2, 2, 0, 4); err == nil {
		t.Error("ResizeBilinearAA to width 0: no error")
	}
	if _, err := Preprocess(make([]uint8, 11), 2, 2, 8, [3]float32{}, [3]float32{1, 1, 1}); err == nil {
		t.Error("Preprocess with 11 bytes for 2x2 RGB: no error")
	}
	if _, err := Preprocess(make([]uint8, 12), 2, 2, 8, [3]float32{}, [3]float32{1, 0, 1}); err == nil {
		t.Error("Preprocess with std 0: no error")
	}
}

func TestPreprocess_Normalise_Order(t *testing.T) {
	// A flat image of value 51 (0.2) with mean 0.5, std 0.25 gives (0.2-0.5)/0.25 = -1.2 everywhere, per
	// channel; a wrong order (normalise before /255) or a channel mix-up changes it.
	pix := make([]uint8, 3*10*6)
	for i := 0; i < 10*6; i++ {
		pix[3*i], pix[3*i+1], pix[3*i+2] = 51, 102, 255
	}
	out, err := Preprocess(pix, 10, 6, 4, [3]float32{0.5, 0.5, 0.5}, [3]float32{0.25, 0.5, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := [3]float32{-1.2, -0.2, 0.5}
	for c := 0; c < 3; c++ {
		for i := 0; i < 16; i++ {
			if v := out[c*16+i]; math.Abs(float64(v-want[c])) > 1e-6 {
				t.Fatalf("channel %d value %v, want %v", c, v, want[c])
			}
		}
	}
}

func BenchmarkPreprocess_900to256(b *testing.B) {
	pix := make([]uint8, 3*900*900)
	for i := range pix {
		pix[i] = uint8(i * 31)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Preprocess(pix, 900, 900, 256, [3]float32{0.5, 0.5, 0.5}, [3]float32{0.5, 0.5, 0.5}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResizeBilinear_256to900(b *testing.B) {
	src := make([]float32, 256*256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ResizeBilinear(src, 1, 256, 256, 900, 900); err != nil {
			b.Fatal(err)
		}
	}
}

// directBilinear is PyTorch's per-pixel bilinear formula, written out as the kernel computes it; the
// separable ResizeBilinear must give the same float32 values bit for bit.
func directBilinear(src []float32, c, sw, sh, dw, dh int) []float32 {
	ax, ay := newLinAxis(sw, dw), newLinAxis(sh, dh)
	dst := make([]float32, c*dw*dh)
	for ch := 0; ch < c; ch++ {
		plane := src[ch*sw*sh : (ch+1)*sw*sh]
		for y := 0; y < dh; y++ {
			r0, r1 := plane[ay.i0[y]*sw:], plane[ay.i1[y]*sw:]
			for x := 0; x < dw; x++ {
				x0, x1 := ax.i0[x], ax.i1[x]
				a := float32(ax.l0[x]*r0[x0]) + float32(ax.l1[x]*r0[x1])
				b := float32(ax.l0[x]*r1[x0]) + float32(ax.l1[x]*r1[x1])
				dst[ch*dw*dh+y*dw+x] = float32(ay.l0[y]*a) + float32(ay.l1[y]*b)
			}
		}
	}
	return dst
}

func TestResizeBilinear_Separable_SameBitsAsDirect(t *testing.T) {
	for _, s := range [][4]int{{256, 256, 900, 900}, {64, 48, 900, 700}, {900, 900, 256, 256}, {7, 5, 3, 11}, {1, 1, 4, 4}, {5, 1, 9, 1}} {
		sw, sh, dw, dh := s[0], s[1], s[2], s[3]
		src := make([]float32, 2*sw*sh)
		for i := range src {
			src[i] = float32(math.Sin(float64(i)*0.37)) * 1e3
		}
		got, err := ResizeBilinear(src, 2, sw, sh, dw, dh)
		if err != nil {
			t.Fatal(err)
		}
		want := directBilinear(src, 2, sw, sh, dw, dh)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%dx%d -> %dx%d: value %d is %v, the direct formula gives %v", sw, sh, dw, dh, i, got[i], want[i])
			}
		}
	}
}
