package regions

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// scene is a w x h image of grey noise with a uniform square of grey 200 at [sx0,sx1)x[sy0,sy1)
// holding an inner square of grey 208, and a green square in the top-right corner (touching two
// borders). Noise up to 120 never comes within 80 of the squares, so the expected regions are exact.
type scene struct {
	img                *RGBA
	outer, inner, edge [4]int // x0, y0, x1, y1
}

func newScene(w, h int) scene { return newNoisyScene(w, h, 100) }

// newNoisyScene is newScene with noise in 20..20+amp.
func newNoisyScene(w, h, amp int) scene {
	s := scene{
		outer: [4]int{w / 6, h / 4, w / 2, h * 3 / 5},
		inner: [4]int{w / 4, h / 3, w / 3, h / 2},
		edge:  [4]int{w * 3 / 4, 0, w, h / 5},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pix := make([]uint8, w*h*4)
	in := func(r [4]int, x, y int) bool { return x >= r[0] && x < r[2] && y >= r[1] && y < r[3] }
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := (y*w + x) * 4
			var c [3]uint8
			switch {
			case in(s.inner, x, y):
				c = [3]uint8{208, 208, 208}
			case in(s.outer, x, y):
				c = [3]uint8{200, 200, 200}
			case in(s.edge, x, y):
				c = [3]uint8{90, 160, 60}
			default:
				v := uint8(20 + rng.IntN(amp+1))
				c = [3]uint8{v, v, v}
			}
			pix[o], pix[o+1], pix[o+2], pix[o+3] = c[0], c[1], c[2], 255
		}
	}
	s.img, _ = NewRGBA(w, h, pix)
	return s
}

// paint returns the spans as a w x h bitmap, failing on overlapping spans.
func paint(t *testing.T, spans []Span, w, h int) []bool {
	t.Helper()
	b := make([]bool, w*h)
	for _, s := range spans {
		for x := s.X0; x < s.X1; x++ {
			i := int(s.Y)*w + int(x)
			if b[i] {
				t.Fatalf("pixel (%d,%d) covered twice", x, s.Y)
			}
			b[i] = true
		}
	}
	return b
}

// wantRegion checks that spans cover exactly the pixels for which want is true.
func wantRegion(t *testing.T, spans []Span, w, h int, want func(x, y int) bool) {
	t.Helper()
	got := paint(t, spans, w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if got[y*w+x] != want(x, y) {
				t.Fatalf("pixel (%d,%d): in region %v, want %v", x, y, got[y*w+x], want(x, y))
			}
		}
	}
}

func inRect(r [4]int) func(x, y int) bool {
	return func(x, y int) bool { return x >= r[0] && x < r[2] && y >= r[1] && y < r[3] }
}

func TestFiller_Grow_Tolerance(t *testing.T) {
	s := newScene(96, 80)
	var f Filler
	ring := func(x, y int) bool { return inRect(s.outer)(x, y) && !inRect(s.inner)(x, y) }
	for _, tc := range []struct {
		name   string
		x, y   int
		tol    int
		region func(x, y int) bool
	}{
		{"tol0_ring", s.outer[0], s.outer[1], 0, ring},
		{"tol7_ring", s.outer[0] + 1, s.outer[1] + 1, 7, ring},
		{"tol8_square", s.outer[0], s.outer[1], 8, inRect(s.outer)},
		{"tol79_square", s.outer[0], s.outer[1], 79, inRect(s.outer)},
		{"tol0_inner", s.inner[0] + 2, s.inner[1] + 2, 0, inRect(s.inner)},
		{"edge_corner", 95, 0, 0, inRect(s.edge)},
		{"edge_tol30", 95, 15, 30, inRect(s.edge)},
		{"all", 0, 79, 255, func(int, int) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans, err := f.Grow(s.img, tc.x, tc.y, tc.tol, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantRegion(t, spans, 96, 80, tc.region)
		})
	}
}

func TestFiller_Grow_Tol0Noise(t *testing.T) {
	// On noise, tolerance 0 keeps the seed and only its 4-neighbours of the very same grey.
	s := newScene(64, 64)
	var f Filler
	spans, err := f.Grow(s.img, 2, 60, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := paint(t, spans, 64, 64)
	if !got[60*64+2] {
		t.Fatal("the seed is not in its own region")
	}
	seed := s.img.Pix[(60*64+2)*4]
	for i, in := range got {
		if in && s.img.Pix[i*4] != seed {
			t.Fatalf("pixel %d of grey %d in the tolerance-0 region of grey %d", i, s.img.Pix[i*4], seed)
		}
	}
}

func TestFiller_Grow_Outside(t *testing.T) {
	s := newScene(32, 32)
	var f Filler
	for _, p := range [][2]int{{-1, 0}, {0, -1}, {32, 0}, {0, 32}} {
		spans, err := f.Grow(s.img, p[0], p[1], 10, nil)
		if !errors.Is(err, ErrOutside) || len(spans) != 0 {
			t.Fatalf("Grow at %v: %d spans, error %v; want none and ErrOutside", p, len(spans), err)
		}
	}
}

func TestFiller_Component_EightConnected(t *testing.T) {
	const w, h = 12, 10
	pix := make([]uint8, w*h)
	set := func(v uint8, pts ...[2]int) {
		for _, p := range pts {
			pix[p[1]*w+p[0]] = v
		}
	}
	// A diagonal chain (one component at 8-connectivity), a separate blob, and a class-2 pixel that
	// touches the chain but is another class.
	set(1, [2]int{1, 1}, [2]int{2, 2}, [2]int{3, 3}, [2]int{4, 3})
	set(1, [2]int{9, 8}, [2]int{10, 8})
	set(2, [2]int{5, 3})
	var f Filler
	spans, err := f.Component(pix, w, h, 2, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]int]bool{{1, 1}: true, {2, 2}: true, {3, 3}: true, {4, 3}: true}
	wantRegion(t, spans, w, h, func(x, y int) bool { return want[[2]int{x, y}] })
	if _, err := f.Component(pix, w, h, 12, 0, nil); !errors.Is(err, ErrOutside) {
		t.Fatalf("Component outside: error %v, want ErrOutside", err)
	}
	if _, err := f.Component(pix[:5], w, h, 0, 0, nil); err == nil {
		t.Fatal("Component with a short mask: no error")
	}
}

func TestSLIC_FollowsEdges(t *testing.T) {
	// Noise of ±20 grey: with ±50, single noise pixels are legitimately closer in colour to the
	// green square than to the grey around them.
	s := newNoisyScene(128, 128, 40)
	sp, err := SLIC(s.img, SLICOptions{Step: 8})
	if err != nil {
		t.Fatal(err)
	}
	if sp.N < 30 || sp.N > 400 {
		t.Fatalf("%d superpixels at step 8 on 128x128, want up to about 256 (fragments on the noise merge)", sp.N)
	}
	// Every superpixel is one colour class (noise, outer ring, inner square, edge square) and one
	// 4-connected piece; the union of the inner square's superpixels is exactly the inner square.
	class := func(x, y int) int {
		switch {
		case inRect(s.inner)(x, y):
			return 1
		case inRect(s.outer)(x, y):
			return 2
		case inRect(s.edge)(x, y):
			return 3
		}
		return 0
	}
	first := make([]int, sp.N)
	for i := range first {
		first[i] = -1
	}
	size := make([]int, sp.N)
	for y := 0; y < 128; y++ {
		for x := 0; x < 128; x++ {
			k := sp.At(x, y)
			size[k]++
			c := class(x, y)
			if first[k] == -1 {
				first[k] = c
			} else if first[k] != c {
				t.Fatalf("superpixel %d spans colour classes %d and %d (at %d,%d)", k, first[k], c, x, y)
			}
		}
	}
	var f Filler
	lab := make([]uint8, 128*128)
	for k := int32(0); k < int32(sp.N); k++ {
		spans := sp.Spans(k, nil)
		if Count(spans) != size[k] {
			t.Fatalf("superpixel %d: Spans covers %d pixels, labels %d", k, Count(spans), size[k])
		}
		// Connectivity: the 4-connected grow inside its own pixels reaches all of them.
		for i := range lab {
			lab[i] = 0
			if sp.Label[i] == k {
				lab[i] = 1
			}
		}
		c, _ := f.Component(lab, 128, 128, int(spans[0].X0), int(spans[0].Y), nil)
		if Count(c) != size[k] {
			t.Fatalf("superpixel %d is not one piece: component %d of %d pixels", k, Count(c), size[k])
		}
	}
	if sp.At(-1, 0) != -1 || sp.At(0, 128) != -1 {
		t.Fatal("At outside the image is not -1")
	}
}

func TestSLIC_TinyImage(t *testing.T) {
	img, _ := NewRGBA(3, 2, make([]uint8, 3*2*4))
	sp, err := SLIC(img, SLICOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sp.N != 1 || Count(sp.Spans(0, nil)) != 6 {
		t.Fatalf("a 3x2 uniform image gave %d superpixels", sp.N)
	}
	if _, err := NewRGBA(3, 2, make([]uint8, 5)); err == nil {
		t.Fatal("NewRGBA with a short buffer: no error")
	}
}

func TestSuperpixels_UnderDisc(t *testing.T) {
	// Two vertical stripes, labels 0 and 1: a disc on the border finds both, once each.
	sp := &Superpixels{W: 8, H: 4, N: 2, Label: make([]int32, 32), Box: [][4]int32{{0, 0, 4, 4}, {4, 0, 8, 4}}}
	for y := 0; y < 4; y++ {
		for x := 4; x < 8; x++ {
			sp.Label[y*8+x] = 1
		}
	}
	if got := sp.UnderDisc(4, 2, 4, nil); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("UnderDisc on the border = %v, want [0 1]", got)
	}
	if got := sp.UnderDisc(1.5, 1.5, 1, nil); len(got) != 1 || got[0] != 0 {
		t.Fatalf("UnderDisc size 1 = %v, want [0]", got)
	}
	if got := sp.UnderDisc(-20, -20, 4, nil); len(got) != 0 {
		t.Fatalf("UnderDisc outside = %v, want none", got)
	}
	x0, y0, x1, y1 := Bounds(sp.Spans(1, nil))
	if x0 != 4 || y0 != 0 || x1 != 8 || y1 != 4 {
		t.Fatalf("Bounds of stripe 1 = %d,%d,%d,%d", x0, y0, x1, y1)
	}
}

func BenchmarkFiller_Grow1024(b *testing.B) {
	s := newScene(1024, 1024)
	var f Filler
	var spans []Span
	b.Run("square", func(b *testing.B) {
		for b.Loop() {
			spans, _ = f.Grow(s.img, s.outer[0], s.outer[1], 8, spans[:0])
		}
	})
	b.Run("whole_image", func(b *testing.B) {
		for b.Loop() {
			spans, _ = f.Grow(s.img, 0, 1023, 255, spans[:0])
		}
	})
}

func BenchmarkFiller_Component1024(b *testing.B) {
	pix := make([]uint8, 1024*1024)
	for i := range pix {
		pix[i] = 1
	}
	var f Filler
	var spans []Span
	for b.Loop() {
		spans, _ = f.Component(pix, 1024, 1024, 512, 512, spans[:0])
	}
}

func BenchmarkSLIC1024(b *testing.B) {
	s := newScene(1024, 1024)
	for b.Loop() {
		if _, err := SLIC(s.img, SLICOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSuperpixels_Brush1024(b *testing.B) {
	// One pointer move of the superpixel brush: the superpixels under a 24 px disc and their spans.
	s := newScene(1024, 1024)
	sp, err := SLIC(s.img, SLICOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var ks []int32
	var spans []Span
	i := 0
	for b.Loop() {
		i++
		ks = sp.UnderDisc(float64(100+i%800), 500, 24, ks[:0])
		spans = spans[:0]
		for _, k := range ks {
			spans = sp.Spans(k, spans)
		}
	}
}

// textured is a smooth pattern with mild noise, like the inspection images the tool is used on.
func textured(w, h int) *RGBA {
	rng := rand.New(rand.NewPCG(3, 4))
	pix := make([]uint8, w*h*4)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(110 + 40*math.Sin(float64(x)/9)*math.Cos(float64(y)/13) + float64(rng.IntN(20)))
			o := (y*w + x) * 4
			pix[o], pix[o+1], pix[o+2], pix[o+3] = v, v, uint8(int(v)*9/10), 255
		}
	}
	img, _ := NewRGBA(w, h, pix)
	return img
}

func BenchmarkSLIC1024Textured(b *testing.B) {
	img := textured(1024, 1024)
	for b.Loop() {
		if _, err := SLIC(img, SLICOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFiller_RandomImages_MatchBFS: on random small images of few colours, Grow (4-connected, within the
// tolerance of the seed) and Component (8-connected, equal labels) give exactly the pixels of a plain
// breadth-first search, each pixel once, whatever was filled before with the same Filler.
func TestFiller_RandomImages_MatchBFS(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var f Filler
	var spans []Span
	for c := range 400 {
		w, h := 1+r.IntN(24), 1+r.IntN(24)
		levels := 1 + r.IntN(4)
		pix := make([]uint8, w*h*4)
		lab := make([]uint8, w*h)
		for i := range lab {
			lab[i] = uint8(r.IntN(levels))
			for k := range 3 {
				pix[i*4+k] = lab[i]*40 + uint8(r.IntN(8))
			}
		}
		img, err := NewRGBA(w, h, pix)
		if err != nil {
			t.Fatal(err)
		}
		x, y, tol := r.IntN(w), r.IntN(h), r.IntN(50)
		seed := y*w + x
		within := func(i int) bool {
			for k := range 3 {
				d := int(pix[i*4+k]) - int(pix[seed*4+k])
				if d > tol || -d > tol {
					return false
				}
			}
			return true
		}
		check := func(name string, spans []Span, conn8 bool, ok func(i int) bool) {
			t.Helper()
			want := make([]bool, w*h)
			want[seed] = true
			queue := []int{seed}
			for len(queue) > 0 {
				i := queue[0]
				queue = queue[1:]
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						if (dx == 0 && dy == 0) || (!conn8 && dx != 0 && dy != 0) {
							continue
						}
						nx, ny := i%w+dx, i/w+dy
						if nx < 0 || ny < 0 || nx >= w || ny >= h || want[ny*w+nx] || !ok(ny*w+nx) {
							continue
						}
						want[ny*w+nx] = true
						queue = append(queue, ny*w+nx)
					}
				}
			}
			got := make([]int, w*h)
			for _, s := range spans {
				for x := s.X0; x < s.X1; x++ {
					got[int(s.Y)*w+int(x)]++
				}
			}
			for i := range got {
				if got[i] > 1 || (got[i] == 1) != want[i] {
					t.Fatalf("case %d %s: pixel %d,%d covered %d times, in the region: %v", c, name, i%w, i/w, got[i], want[i])
				}
			}
		}
		spans, err = f.Grow(img, x, y, tol, spans[:0])
		if err != nil {
			t.Fatal(err)
		}
		check("Grow", spans, false, within)
		spans, err = f.Component(lab, w, h, x, y, spans[:0])
		if err != nil {
			t.Fatal(err)
		}
		check("Component", spans, true, func(i int) bool { return lab[i] == lab[seed] })
	}
}
