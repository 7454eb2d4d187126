//go:build !js

package demodata

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// goldenPixelDigest pins the generated pixels. It must only change together with GeneratorVersion; a
// mismatch on another architecture means the generator is not platform-independent.
const goldenPixelDigest = "1991ae3cbae3dc460343abcac936b3f5dce4b902759f0b1531fc28c8a7aca993"

// rendered is one Render shared by the tests (Generate uses it too): under -race a render takes seconds.
// TestRender_Deterministic_SameBytesTwice compares it with a fresh Render.
var rendered = sync.OnceValues(Render)

func init() { render = rendered }

func TestRender_Deterministic_SameBytesTwice(t *testing.T) {
	a, err := rendered()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("file counts differ: %d vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Path != b[i].Path || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("file %s differs between two renders", a[i].Path)
		}
	}
	d, err := PixelDigest(a)
	if err != nil {
		t.Fatal(err)
	}
	if d != goldenPixelDigest {
		t.Errorf("pixel digest %s, golden %s: the generator output changed (bump GeneratorVersion and the golden digest together)", d, goldenPixelDigest)
	}
}

func TestRender_Layout_MVTecCategory(t *testing.T) {
	files, err := rendered()
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string][]byte{}
	for _, f := range files {
		byPath[f.Path] = f.Data
	}
	want := TrainGood + TestGood + 2*PerDefect*len(Kinds)
	if len(files) != want {
		t.Fatalf("%d files, want %d", len(files), want)
	}
	for i := 0; i < TrainGood; i++ {
		checkRGB(t, byPath, fmt.Sprintf("train/good/%03d.png", i))
	}
	for i := 0; i < TestGood; i++ {
		checkRGB(t, byPath, fmt.Sprintf("test/good/%03d.png", i))
	}
	for _, k := range Kinds {
		for i := 0; i < PerDefect; i++ {
			checkRGB(t, byPath, fmt.Sprintf("test/%s/%03d.png", k, i))
			p := fmt.Sprintf("ground_truth/%s/%03d_mask.png", k, i)
			data, ok := byPath[p]
			if !ok {
				t.Fatalf("missing %s", p)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			g, ok := img.(*image.Gray)
			if !ok {
				t.Fatalf("%s decodes as %T, want 8-bit grey", p, img)
			}
			if g.Bounds().Dx() != Size || g.Bounds().Dy() != Size {
				t.Fatalf("%s is %v", p, g.Bounds())
			}
			n := 0
			for _, v := range g.Pix {
				switch v {
				case 0:
				case 255:
					n++
				default:
					t.Fatalf("%s holds grey value %d, want only 0 and 255", p, v)
				}
			}
			// A defect must be visible but small: more than a speck, less than a tenth of the image.
			if n < 40 || n > Size*Size/10 {
				t.Errorf("%s has %d defect pixels", p, n)
			}
		}
	}
}

func checkRGB(t *testing.T, byPath map[string][]byte, p string) {
	t.Helper()
	data, ok := byPath[p]
	if !ok {
		t.Fatalf("missing %s", p)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if cfg.Width != Size || cfg.Height != Size {
		t.Fatalf("%s is %dx%d", p, cfg.Width, cfg.Height)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if _, ok := img.(*image.RGBA); !ok {
		t.Fatalf("%s decodes as %T, want opaque RGB", p, img)
	}
}

// The mask must mark exactly the painted pixels: outside it the defective image equals the clean surface
// it was painted on, inside it (almost) every pixel differs, and visibly so on average.
func TestDefect_Mask_MatchesPaintedPixels(t *testing.T) {
	for _, kind := range Kinds {
		for i := 0; i < PerDefect; i++ {
			key := "test/" + kind
			clean := surface(imageSeed(key, i)).rgb()
			c := surface(imageSeed(key, i))
			m := defect(c, kind, newRNG(imageSeed(key+"/defect", i)))
			img := c.rgb()
			inside, changed, sum := 0, 0, 0
			for p := 0; p < Size*Size; p++ {
				d := 0
				for ch := 0; ch < 3; ch++ {
					d += abs(int(img.Pix[4*p+ch]) - int(clean.Pix[4*p+ch]))
				}
				if m.Pix[p] == 0 {
					if d != 0 {
						t.Fatalf("%s %d: pixel %d outside the mask changed by %d", kind, i, p, d)
					}
					continue
				}
				inside++
				sum += d
				if d != 0 {
					changed++
				}
			}
			if changed*100 < inside*99 {
				t.Errorf("%s %d: only %d of %d masked pixels changed", kind, i, changed, inside)
			}
			if mean := sum / (3 * inside); mean < 15 {
				t.Errorf("%s %d: mean change %d grey levels per channel is too faint", kind, i, mean)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// The precomputed lattice must give exactly the per-pixel noise, including at negative-free large offsets.
func TestNoiseLayer_At_EqualsValueNoise(t *testing.T) {
	for _, c := range []struct{ ox, oy, cx, cy int }{{0, 0, 11, 1}, {65535, 1234, 61, 2}, {77, 65000, 128, 128}} {
		l := newNoiseLayer(c.ox, c.oy, c.cx, c.cy, 20, 99)
		for y := 0; y < Size; y += 3 {
			for x := 0; x < Size; x++ {
				want := (valueNoise(x+c.ox, y+c.oy, c.cx, c.cy, 99) - 128) * 20 / 128
				if got := l.at(x, y); got != want {
					t.Fatalf("%+v at (%d,%d): %d, want %d", c, x, y, got, want)
				}
			}
		}
	}
}

// Good images must differ from each other (a distribution, not one picture).
func TestSurface_Variation_ImagesDiffer(t *testing.T) {
	a := surface(imageSeed("train/good", 0)).rgb()
	b := surface(imageSeed("train/good", 1)).rgb()
	if bytes.Equal(a.Pix, b.Pix) {
		t.Fatal("two good images are identical")
	}
}

func TestEnsure_UpToDate_SkipsAndRepairs(t *testing.T) {
	dir := t.TempDir()
	gen, err := Ensure(dir)
	if err != nil || !gen {
		t.Fatalf("first Ensure: generated=%v err=%v", gen, err)
	}
	if err := Verify(dir); err != nil {
		t.Fatalf("Verify after Generate: %v", err)
	}
	gen, err = Ensure(dir)
	if err != nil || gen {
		t.Fatalf("second Ensure: generated=%v err=%v, want a skip", gen, err)
	}
	man := filepath.Join(dir, Category, ManifestName)
	raw, err := os.ReadFile(man)
	if err != nil {
		t.Fatal(err)
	}
	old := bytes.Replace(raw, []byte(fmt.Sprintf(`"version": %d`, GeneratorVersion)), []byte(`"version": 0`), 1)
	if bytes.Equal(old, raw) {
		t.Fatal("manifest has no version field to rewrite")
	}
	if err := os.WriteFile(man, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir); !errors.Is(err, ErrStale) {
		t.Fatalf("Verify with an old manifest version: %v, want ErrStale", err)
	}
	if err := os.WriteFile(man, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, Category, "test", "spot", "003.png")
	if err := os.WriteFile(victim, []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir); !errors.Is(err, ErrStale) {
		t.Fatalf("Verify after tampering: %v, want ErrStale", err)
	}
	gen, err = Ensure(dir)
	if err != nil || !gen {
		t.Fatalf("Ensure after tampering: generated=%v err=%v, want a regeneration", gen, err)
	}
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(data)); err != nil {
		t.Fatalf("repaired file: %v", err)
	}
	// No temporary folder is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func BenchmarkRender(b *testing.B) {
	for b.Loop() {
		if _, err := Render(); err != nil {
			b.Fatal(err)
		}
	}
}
