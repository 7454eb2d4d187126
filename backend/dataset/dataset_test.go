//go:build !js

package dataset

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/shared/protocol"
)

// writePNG writes a w x h grey PNG whose pixel (x, y) is f(x, y).
func writePNG(t *testing.T, p string, w, h int, f func(x, y int) uint8) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetGray(x, y, color.Gray{Y: f(x, y)})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, buf.Bytes())
}

func writeJPEG(t *testing.T, p string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, buf.Bytes())
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func flat(v uint8) func(x, y int) uint8 { return func(int, int) uint8 { return v } }

// makeCategory writes a small MVTec category: 2 train/good, 1 test/good, 2 test/scratch with masks (one
// anti-aliased), a stray text file and a broken PNG.
func makeCategory(t *testing.T, dir string) {
	writePNG(t, filepath.Join(dir, "train/good/000.png"), 8, 6, flat(100))
	writePNG(t, filepath.Join(dir, "train/good/001.png"), 8, 6, flat(101))
	writePNG(t, filepath.Join(dir, "test/good/000.png"), 8, 6, flat(102))
	writePNG(t, filepath.Join(dir, "test/scratch/000.png"), 8, 6, flat(50))
	writePNG(t, filepath.Join(dir, "test/scratch/001.png"), 8, 6, flat(51))
	// Column x holds 0, 1 or 255 (x mod 3): every non-zero value is a defect.
	writePNG(t, filepath.Join(dir, "ground_truth/scratch/000_mask.png"), 8, 6, func(x, y int) uint8 { return []uint8{0, 1, 255}[x%3] })
	writePNG(t, filepath.Join(dir, "ground_truth/scratch/001_mask.png"), 8, 6, func(x, y int) uint8 {
		if y == 2 {
			return 255
		}
		return 0
	})
	writeFile(t, filepath.Join(dir, "readme.txt"), []byte("not an image"))
	writeFile(t, filepath.Join(dir, "test/scratch/._000.png"), []byte("macOS resource fork"))
	writeFile(t, filepath.Join(dir, "test/scratch/002.png"), []byte("broken"))
}

func TestOpen_MVTecCategory_IndexesImagesAndMasks(t *testing.T) {
	root := filepath.Join(t.TempDir(), "widget")
	makeCategory(t, root)
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	info := d.Info()
	if info.Layout != protocol.LayoutMVTec || info.Name != "widget" || info.Root != root {
		t.Fatalf("info %+v", info)
	}
	if !reflect.DeepEqual(info.Kinds, []string{"good", "scratch"}) || !reflect.DeepEqual(info.Categories, []string{"widget"}) {
		t.Fatalf("kinds %v categories %v", info.Kinds, info.Categories)
	}
	var ids []string
	for _, im := range d.Images() {
		ids = append(ids, im.ID)
		if im.Width != 8 || im.Height != 6 || im.Category != "widget" {
			t.Errorf("%s: %+v", im.ID, im)
		}
	}
	want := []string{"test/good/000.png", "test/scratch/000.png", "test/scratch/001.png", "train/good/000.png", "train/good/001.png"}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids %v, want %v (the broken PNG and the text file must be left out)", ids, want)
	}
	im, ok := d.Image("test/scratch/001.png")
	if !ok || im.MaskID != "ground_truth/scratch/001_mask.png" || im.Split != "test" || im.Kind != "scratch" {
		t.Fatalf("image %+v ok=%v", im, ok)
	}
	if im, _ := d.Image("train/good/000.png"); im.MaskID != "" || im.Split != "train" {
		t.Fatalf("train image %+v", im)
	}
	if info.Images != 5 {
		t.Fatalf("Images count %d", info.Images)
	}
}

func TestDataset_GroundTruth_NonZeroIsDefect(t *testing.T) {
	root := t.TempDir()
	makeCategory(t, root)
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	m, w, h, ok, err := d.GroundTruth("test/scratch/000.png")
	if err != nil || !ok || w != 8 || h != 6 {
		t.Fatalf("GroundTruth: %v ok=%v %dx%d", err, ok, w, h)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if want := x%3 != 0; m[y*w+x] != want {
				t.Fatalf("pixel (%d,%d) grey %d: defect=%v, want %v", x, y, []uint8{0, 1, 255}[x%3], m[y*w+x], want)
			}
		}
	}
	if _, _, _, ok, err := d.GroundTruth("test/good/000.png"); ok || err != nil {
		t.Fatalf("good image: ok=%v err=%v, want no mask and no error", ok, err)
	}
	if _, _, _, _, err := d.GroundTruth("test/nope.png"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown image: %v", err)
	}
}

func TestDataset_GroundTruth_SizeMismatchIsError(t *testing.T) {
	root := t.TempDir()
	makeCategory(t, root)
	writePNG(t, filepath.Join(root, "ground_truth/scratch/001_mask.png"), 7, 6, flat(255))
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := d.GroundTruth("test/scratch/001.png"); err == nil {
		t.Fatal("a 7x6 mask for an 8x6 image was accepted")
	}
}

func TestOpen_CategoriesFolder_IDsCarryCategory(t *testing.T) {
	root := t.TempDir()
	makeCategory(t, filepath.Join(root, "b"))
	makeCategory(t, filepath.Join(root, "a"))
	writeFile(t, filepath.Join(root, "license.txt"), []byte("x"))
	makeCategory(t, filepath.Join(root, ".tiles.tmp-123")) // an interrupted generator's folder
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	info := d.Info()
	if !reflect.DeepEqual(info.Categories, []string{"a", "b"}) || info.Images != 10 {
		t.Fatalf("info %+v", info)
	}
	im, ok := d.Image("b/test/scratch/000.png")
	if !ok || im.Category != "b" || im.MaskID != "b/ground_truth/scratch/000_mask.png" {
		t.Fatalf("image %+v ok=%v", im, ok)
	}
	if d.Images()[0].ID != "a/test/good/000.png" {
		t.Fatalf("first image %s, want sorted ids", d.Images()[0].ID)
	}
}

func TestOpen_ImagesMasks_KindsFromFoldersAndEmptyMasks(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tiles")
	writeJPEG(t, filepath.Join(root, "MT_Crack/Imgs/a.jpg"), 5, 4)
	writePNG(t, filepath.Join(root, "MT_Crack/Imgs/a.png"), 5, 4, func(x, y int) uint8 { return uint8(255 * (x & 1)) })
	writeJPEG(t, filepath.Join(root, "MT_Crack/Imgs/b.jpg"), 5, 4)
	writePNG(t, filepath.Join(root, "MT_Crack/Imgs/b.png"), 5, 4, flat(0)) // empty mask: good
	writeJPEG(t, filepath.Join(root, "MT_Free/Imgs/c.jpg"), 5, 4)
	writePNG(t, filepath.Join(root, "MT_Free/Imgs/c.png"), 5, 4, flat(0))
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	info := d.Info()
	if info.Layout != protocol.LayoutImagesMasks || !reflect.DeepEqual(info.Kinds, []string{"good", "Crack"}) || !reflect.DeepEqual(info.Categories, []string{"tiles"}) {
		t.Fatalf("info %+v", info)
	}
	got := map[string]protocol.ImageInfo{}
	for _, im := range d.Images() {
		got[im.ID] = im
	}
	if len(got) != 3 {
		t.Fatalf("images %v, want the three JPEGs only", got)
	}
	if a := got["MT_Crack/Imgs/a.jpg"]; a.Kind != "Crack" || a.MaskID != "MT_Crack/Imgs/a.png" || a.Split != "test" || a.Width != 5 {
		t.Fatalf("a: %+v", a)
	}
	if b := got["MT_Crack/Imgs/b.jpg"]; b.Kind != "good" || b.MaskID != "" {
		t.Fatalf("b with an empty mask: %+v", b)
	}
	if c := got["MT_Free/Imgs/c.jpg"]; c.Kind != "good" || c.MaskID != "" {
		t.Fatalf("c: %+v", c)
	}
	m, _, _, ok, err := d.GroundTruth("MT_Crack/Imgs/a.jpg")
	if err != nil || !ok || m[0] || !m[1] {
		t.Fatalf("mask of a: ok=%v err=%v %v", ok, err, m)
	}
	// The mask file is served, the empty one (not indexed) is not.
	if f, err := d.Open("MT_Crack/Imgs/a.png"); err != nil {
		t.Fatalf("open indexed mask: %v", err)
	} else {
		f.Close()
	}
	if _, err := d.Open("MT_Crack/Imgs/b.png"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open unindexed mask: %v", err)
	}
}

func TestOpen_NoLayout_Error(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "x/y.png"), []byte("x"))
	if _, err := Open(root); err == nil {
		t.Fatal("a folder with no known layout was accepted")
	}
	if _, err := Open(filepath.Join(root, "missing")); err == nil {
		t.Fatal("a missing folder was accepted")
	}
}

func TestDataset_Open_RefusesHostilePaths(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "cat")
	makeCategory(t, root)
	secret := filepath.Join(base, "secret.png")
	writePNG(t, secret, 8, 6, flat(9))
	writePNG(t, filepath.Join(base, "outside/good/000.png"), 8, 6, flat(9))
	// A symlinked image pointing outside, a symlinked kind folder pointing outside, and one symlink that
	// stays inside (followed).
	must(t, os.Symlink(secret, filepath.Join(root, "test/good/001.png")))
	must(t, os.Symlink(filepath.Join(base, "outside/good"), filepath.Join(root, "test/leak")))
	must(t, os.Symlink("000.png", filepath.Join(root, "train/good/002.png")))

	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Image("test/good/001.png"); ok {
		t.Fatal("a symlink to a file outside the root was indexed")
	}
	if _, ok := d.Image("test/leak/000.png"); ok {
		t.Fatal("a symlinked folder outside the root was indexed")
	}
	for _, k := range d.Info().Kinds {
		if k == "leak" {
			t.Fatal("the outside folder became a kind")
		}
	}
	if _, ok := d.Image("train/good/002.png"); !ok {
		t.Fatal("a symlink inside the root was not followed")
	}

	cases := []struct {
		id   string
		want error
	}{
		{"../secret.png", ErrOutsideRoot},
		{"test/../../secret.png", ErrOutsideRoot},
		{secret, ErrOutsideRoot},
		{"/etc/passwd", ErrOutsideRoot},
		{`test\..\..\secret.png`, ErrOutsideRoot},
		{"test/good/001.png", ErrNotFound},
		{"test/leak/000.png", ErrNotFound},
		{"test/good/./000.png", ErrNotFound},
		{"readme.txt", ErrNotFound},
		{"", ErrNotFound},
	}
	for _, c := range cases {
		if f, err := d.Open(c.id); !errors.Is(err, c.want) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q): %v, want %v", c.id, err, c.want)
		}
		if _, err := d.Decode(c.id); !errors.Is(err, c.want) {
			t.Errorf("Decode(%q): %v, want %v", c.id, err, c.want)
		}
		if _, err := d.Thumbnail(c.id, 64); !errors.Is(err, c.want) {
			t.Errorf("Thumbnail(%q): %v, want %v", c.id, err, c.want)
		}
	}

	// An indexed file swapped for a symlink to the outside after indexing is still refused by os.Root.
	victim := filepath.Join(root, "test/good/000.png")
	must(t, os.Remove(victim))
	must(t, os.Symlink(secret, victim))
	if _, err := d.Open("test/good/000.png"); !errors.Is(err, ErrOutsideRoot) {
		t.Fatalf("swapped symlink: %v, want ErrOutsideRoot", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDataset_Thumbnail_ScaledAndCached(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "test/good/000.png"), 300, 150, func(x, y int) uint8 { return uint8(x) })
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := d.Thumbnail("test/good/000.png", 100)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(b1))
	if err != nil {
		t.Fatalf("thumbnail is not a JPEG: %v", err)
	}
	if img.Bounds().Dx() != 100 || img.Bounds().Dy() != 50 {
		t.Fatalf("thumbnail %v, want 100x50 (aspect kept)", img.Bounds())
	}
	// The gradient survives scaling: left darker than right.
	l, _, _, _ := img.At(5, 25).RGBA()
	r, _, _, _ := img.At(95, 25).RGBA()
	if l >= r {
		t.Fatalf("gradient lost: left %d right %d", l, r)
	}
	if d.thumbs.len() != 1 {
		t.Fatalf("cache holds %d entries", d.thumbs.len())
	}
	b2, err := d.Thumbnail("test/good/000.png", 100)
	if err != nil || &b1[0] != &b2[0] {
		t.Fatalf("second call did not come from the cache (err %v)", err)
	}
	big, err := d.Thumbnail("test/good/000.png", 1024)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(big)); err != nil || cfg.Width != 300 {
		t.Fatalf("thumbnail larger than the image: %+v %v, want no enlargement", cfg, err)
	}
	for _, s := range []int{0, MinThumbnail - 1, MaxThumbnail + 1} {
		if _, err := d.Thumbnail("test/good/000.png", s); err == nil {
			t.Errorf("size %d accepted", s)
		}
	}
}

func TestLRU_Put_EvictsLeastRecent(t *testing.T) {
	c := newLRU(10)
	c.put("a", make([]byte, 4))
	c.put("b", make([]byte, 4))
	c.get("a") // a is now the most recent
	c.put("c", make([]byte, 4))
	if _, ok := c.get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Fatal("a was evicted although recently used")
	}
	if c.size != 8 || c.len() != 2 {
		t.Fatalf("size %d len %d", c.size, c.len())
	}
}

func TestID_SameRoot_StableAndDistinct(t *testing.T) {
	a1, a2 := ID("/data/mvtec/bottle"), ID("/data/mvtec/bottle")
	b := ID("/other/mvtec/bottle")
	if a1 != a2 || a1 == b {
		t.Fatalf("ids %s %s %s", a1, a2, b)
	}
	if got := ID("/x/My Data_set!"); got[:len("my-data-set-")] != "my-data-set-" {
		t.Fatalf("slug %s", got)
	}
}

func BenchmarkDataset_Thumbnail_Uncached(b *testing.B) {
	root := b.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 900, 900))
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(root, "test/good/000.png")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, buf.Bytes(), 0o644)
	d, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	size := MinThumbnail
	for b.Loop() {
		// A new size each time defeats the cache.
		if _, err := d.Thumbnail("test/good/000.png", size); err != nil {
			b.Fatal(err)
		}
		size = MinThumbnail + (size+1)%(MaxThumbnail-MinThumbnail)
	}
}

// BenchmarkOpen indexes a real dataset folder named by RDRE_BENCH_DATA (e.g. ../shared/data/mvtec/bottle).
func BenchmarkOpen(b *testing.B) {
	root := os.Getenv("RDRE_BENCH_DATA")
	if root == "" {
		b.Skip("set RDRE_BENCH_DATA to a dataset folder")
	}
	for b.Loop() {
		d, err := Open(root)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// boxScale must average exactly: a 4x2 image with known values shrunk to 2x1 gives the means of the
// 2x2 blocks, for every decoder output type it has a fast path for.
func TestBoxScale_Averages_AllFastPaths(t *testing.T) {
	vals := []uint8{10, 20, 30, 40, 50, 60, 71, 80} // row-major 4x2
	want := []uint8{(10 + 20 + 50 + 60 + 2) / 4, (30 + 40 + 71 + 80 + 2) / 4}
	rgba := image.NewRGBA(image.Rect(0, 0, 4, 2))
	nrgba := image.NewNRGBA(image.Rect(0, 0, 4, 2))
	gray := image.NewGray(image.Rect(0, 0, 4, 2))
	ycc := image.NewYCbCr(image.Rect(0, 0, 4, 2), image.YCbCrSubsampleRatio444)
	gray16 := image.NewGray16(image.Rect(0, 0, 4, 2)) // generic path
	for i, v := range vals {
		x, y := i%4, i/4
		rgba.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		nrgba.SetNRGBA(x, y, color.NRGBA{v, v, v, 255})
		gray.SetGray(x, y, color.Gray{v})
		ycc.Y[ycc.YOffset(x, y)] = v
		ycc.Cb[ycc.COffset(x, y)] = 128
		ycc.Cr[ycc.COffset(x, y)] = 128
		gray16.SetGray16(x, y, color.Gray16{uint16(v) * 257})
	}
	// A sub-image with a non-zero origin exercises the bounds handling.
	big := image.NewRGBA(image.Rect(0, 0, 6, 3))
	for i, v := range vals {
		big.SetRGBA(2+i%4, 1+i/4, color.RGBA{v, v, v, 255})
	}
	sub := big.SubImage(image.Rect(2, 1, 6, 3))
	for name, img := range map[string]image.Image{"rgba": rgba, "nrgba": nrgba, "gray": gray, "ycbcr": ycc, "gray16": gray16, "sub": sub} {
		out := boxScale(img, 2, 1)
		for x := 0; x < 2; x++ {
			p := out.RGBAAt(x, 0)
			if p.R != want[x] || p.G != want[x] || p.B != want[x] || p.A != 255 {
				t.Errorf("%s: pixel %d is %v, want grey %d", name, x, p, want[x])
			}
		}
	}
}

// A thumbnail request that is abandoned while it waits for decode memory gives up without decoding,
// so a grid the user left stops costing decodes.
func TestDataset_ThumbnailContext_AbandonedWhileWaiting(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "test/good/000.png"), 300, 150, func(x, y int) uint8 { return uint8(x) })
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	imageio.SetDecodeBudget(4 << 20)
	defer imageio.SetDecodeBudget(0)
	hold, err := imageio.DecodeBudget().Acquire(context.Background(), 4<<20) // every byte taken
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := d.ThumbnailContext(ctx, "test/good/000.png", 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("abandoned request: %v, want the context's error", err)
	}
	if d.thumbs.len() != 0 {
		t.Fatal("an abandoned request still made a thumbnail")
	}
	dead, stop := context.WithCancel(context.Background())
	stop()
	hold()
	if _, err := d.ThumbnailContext(dead, "test/good/000.png", 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("request already ended: %v", err)
	}
	if _, err := d.ThumbnailContext(context.Background(), "test/good/000.png", 100); err != nil {
		t.Fatalf("after the budget is free: %v", err)
	}
}
