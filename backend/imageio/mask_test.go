//go:build !js

package imageio

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

const mw, mh = 16, 8

// inRect is the defect of the generated masks: 6x4 = 24 pixels.
func inRect(x, y int) bool { return x >= 4 && x < 10 && y >= 2 && y < 6 }

const rectPixels = 24

func encPNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func grey(f func(x, y int) uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, mw, mh))
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			g.Pix[y*g.Stride+x] = f(x, y)
		}
	}
	return g
}

func rectGrey(v uint8) *image.Gray {
	return grey(func(x, y int) uint8 {
		if inRect(x, y) {
			return v
		}
		return 0
	})
}

type maskCase struct {
	file     []byte
	defects  int
	encoding string
	warning  string // substring of the one expected warning; "" = no warning
	check    func(t *testing.T, m Mask)
}

func runMaskCase(t *testing.T, c maskCase) {
	t.Helper()
	m, err := DecodeMask(bytes.NewReader(c.file))
	if err != nil {
		t.Fatalf("DecodeMask: %v", err)
	}
	if m.W != mw || m.H != mh || len(m.Pix) != mw*mh {
		t.Fatalf("size %dx%d with %d pixels, want %dx%d", m.W, m.H, len(m.Pix), mw, mh)
	}
	n := 0
	for _, v := range m.Pix {
		if v {
			n++
		}
	}
	if n != m.Defects {
		t.Errorf("Defects %d but Pix holds %d", m.Defects, n)
	}
	if m.Defects != c.defects {
		t.Errorf("%d defect pixels, want %d", m.Defects, c.defects)
	}
	if m.Encoding != c.encoding {
		t.Errorf("encoding %q, want %q", m.Encoding, c.encoding)
	}
	switch {
	case c.warning == "" && len(m.Warnings) != 0:
		t.Errorf("unexpected warnings %q", m.Warnings)
	case c.warning != "" && (len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], c.warning)):
		t.Errorf("warnings %q, want one containing %q", m.Warnings, c.warning)
	}
	if c.check != nil {
		c.check(t, m)
	}
}

// wantRect checks that exactly the generated rectangle is defect.
func wantRect(t *testing.T, m Mask) {
	t.Helper()
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			if m.Pix[y*mw+x] != inRect(x, y) {
				t.Fatalf("pixel (%d,%d) defect=%v, want %v", x, y, m.Pix[y*mw+x], inRect(x, y))
			}
		}
	}
}

func TestDecodeMask_Grey0255(t *testing.T) {
	runMaskCase(t, maskCase{file: encPNG(t, rectGrey(255)), defects: rectPixels, encoding: "grey 0/255", check: wantRect})
}

func TestDecodeMask_Grey01(t *testing.T) {
	runMaskCase(t, maskCase{file: encPNG(t, rectGrey(1)), defects: rectPixels, encoding: "grey 0/1", check: wantRect})
}

func TestDecodeMask_GreyOtherValue(t *testing.T) {
	runMaskCase(t, maskCase{file: encPNG(t, rectGrey(40)), defects: rectPixels, encoding: "grey 0/40", check: wantRect})
}

// An anti-aliased disk: 255 inside, a ring of in-between coverage values (more than FewClassIDs of
// them), 0 outside. Every non-zero value is a defect, the faintest edge included.
// TestDecodeMask_AntiAliased: a 0/255 disc with a blurred rim reads at the midpoint (the rim's values are
// blur, not defect), and so does a 0/255 mask with faint compression noise around it, as the Magnetic-Tile
// set's PNG masks carry.
func TestDecodeMask_AntiAliased(t *testing.T) {
	const size = 40
	g := image.NewGray(image.Rect(0, 0, size, size))
	bright := 0
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			dx, dy := float64(x)-19.5, float64(y)-19.3
			d := dx*dx + dy*dy
			var v uint8
			switch {
			case d <= 12*12:
				v = 255
			case d < 14*14:
				v = uint8(1 + 253*(14*14-d)/(14*14-12*12))
			}
			g.Pix[y*size+x] = v
			if v >= 128 {
				bright++
			}
		}
	}
	m, err := DecodeMask(bytes.NewReader(encPNG(t, g)))
	if err != nil {
		t.Fatal(err)
	}
	levels := map[uint8]bool{}
	for _, v := range g.Pix {
		levels[v] = true
	}
	if len(levels) <= FewClassIDs+2 {
		t.Fatalf("fixture has only %d levels; it must have more than %d to test anti-aliasing", len(levels), FewClassIDs+1)
	}
	const soft = "grey 0/255 with soft edges (read at >= 128)"
	if m.Defects != bright || m.Encoding != soft || len(m.Warnings) != 0 {
		t.Fatalf("got %d defects, %q, warnings %q; want %d, %s, none", m.Defects, m.Encoding, m.Warnings, bright, soft)
	}
	// Noise: a few pixels of 1 and 2 far from the disc are not defects.
	g.Pix[0], g.Pix[1], g.Pix[size*size-1] = 1, 2, 1
	m, err = DecodeMask(bytes.NewReader(encPNG(t, g)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Defects != bright || m.Pix[0] || m.Pix[1] || m.Encoding != soft {
		t.Fatalf("with noise: %d defects (want %d), noise read as defect: %v %v, %q", m.Defects, bright, m.Pix[0], m.Pix[1], m.Encoding)
	}
}

func TestDecodeMask_ClassIDs(t *testing.T) {
	for name, vals := range map[string][3]uint8{"1..3": {1, 2, 3}, "253..255": {253, 254, 255}} {
		t.Run(name, func(t *testing.T) {
			g := grey(func(x, y int) uint8 {
				if !inRect(x, y) {
					return 0
				}
				return vals[x%3]
			})
			runMaskCase(t, maskCase{file: encPNG(t, g), defects: rectPixels, encoding: "class ids", check: wantRect})
		})
	}
}

func TestDecodeMask_16bit(t *testing.T) {
	for _, v := range []uint16{255, 65535, 1} {
		g := image.NewGray16(image.Rect(0, 0, mw, mh))
		for y := 0; y < mh; y++ {
			for x := 0; x < mw; x++ {
				if inRect(x, y) {
					g.SetGray16(x, y, color.Gray16{Y: v})
				}
			}
		}
		t.Run("0/"+strconv.Itoa(int(v)), func(t *testing.T) {
			runMaskCase(t, maskCase{file: encPNG(t, g), defects: rectPixels, encoding: "16-bit grey 0/" + strconv.Itoa(int(v)), check: wantRect})
		})
	}
}

// Label tools write palette PNGs: index 0 black background, index 1 a dark red whose grey value (38) is
// far below 128.
func TestDecodeMask_Palette(t *testing.T) {
	p := image.NewPaletted(image.Rect(0, 0, mw, mh), color.Palette{color.RGBA{0, 0, 0, 255}, color.RGBA{128, 0, 0, 255}})
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			if inRect(x, y) {
				p.SetColorIndex(x, y, 1)
			}
		}
	}
	runMaskCase(t, maskCase{file: encPNG(t, p), defects: rectPixels, encoding: "palette", check: wantRect})
}

// The index, not the colour, decides: a palette whose index 0 is white still has a white background. When
// a used index other than 0 is black, the palette is likely out of order, which deserves a warning.
func TestDecodeMask_PaletteOutOfOrder(t *testing.T) {
	p := image.NewPaletted(image.Rect(0, 0, mw, mh), color.Palette{color.White, color.Black})
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			if !inRect(x, y) {
				p.SetColorIndex(x, y, 1)
			}
		}
	}
	runMaskCase(t, maskCase{file: encPNG(t, p), defects: mw*mh - rectPixels, encoding: "palette", warning: "palette index 1 is black"})
}

// An 8-bit BMP is a palette image too (a grey one here): index = grey value.
func TestDecodeMask_BMP(t *testing.T) {
	var buf bytes.Buffer
	if err := bmp.Encode(&buf, rectGrey(255)); err != nil {
		t.Fatal(err)
	}
	runMaskCase(t, maskCase{file: buf.Bytes(), defects: rectPixels, encoding: "palette", check: wantRect})
}

func TestDecodeMask_TIFF(t *testing.T) {
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, rectGrey(1), nil); err != nil {
		t.Fatal(err)
	}
	runMaskCase(t, maskCase{file: buf.Bytes(), defects: rectPixels, encoding: "grey 0/1", check: wantRect})
}

func TestDecodeMask_RGB(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, mw, mh))
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			c := color.RGBA{0, 0, 0, 255}
			if inRect(x, y) {
				c = color.RGBA{0, 0, 90, 255} // a dark blue class colour, grey 10
			}
			img.SetRGBA(x, y, c)
		}
	}
	runMaskCase(t, maskCase{file: encPNG(t, img), defects: rectPixels, encoding: "rgb", check: wantRect})
}

// A transparent background whose colour is not black (white at alpha 0, as painting tools leave it) is
// background; the opaque strokes are defects.
func TestDecodeMask_RGBATransparent(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, mw, mh))
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			c := color.NRGBA{255, 255, 255, 0}
			if inRect(x, y) {
				c = color.NRGBA{255, 0, 0, 200}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	runMaskCase(t, maskCase{file: encPNG(t, img), defects: rectPixels, encoding: "rgba", check: wantRect})
}

// JPEG leaves small non-zero values around the edges of a 0/255 mask: they are not defects.
func TestDecodeMask_JPEG(t *testing.T) {
	for name, img := range map[string]image.Image{
		"grey": rectGrey(255),
		"red": func() image.Image {
			m := image.NewRGBA(image.Rect(0, 0, mw, mh))
			for y := 0; y < mh; y++ {
				for x := 0; x < mw; x++ {
					c := color.RGBA{0, 0, 0, 255}
					if inRect(x, y) {
						c = color.RGBA{255, 0, 0, 255}
					}
					m.SetRGBA(x, y, c)
				}
			}
			return m
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
				t.Fatal(err)
			}
			// The file really holds the noise the rule is for.
			dec, _, err := Decode(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			noisy := 0
			for y := 0; y < mh; y++ {
				for x := 0; x < mw; x++ {
					r, g, b, _ := dec.At(x, y).RGBA()
					if !inRect(x, y) && r|g|b != 0 {
						noisy++
					}
				}
			}
			if noisy == 0 {
				t.Fatal("the JPEG fixture has no compression noise outside the defect")
			}
			runMaskCase(t, maskCase{file: buf.Bytes(), defects: rectPixels, encoding: "jpeg", check: wantRect})
		})
	}
}

// A photo saved where a mask belongs: read with the rule, with a warning that says why it looks wrong.
func TestDecodeMask_PhotoWarns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := grey(func(x, y int) uint8 { return uint8(1 + rng.IntN(250)) })
	g.Pix[0] = 0
	levels := map[uint8]bool{}
	for _, v := range g.Pix[1:] {
		levels[v] = true
	}
	runMaskCase(t, maskCase{file: encPNG(t, g), defects: mw*mh - 1, encoding: "grey",
		warning: "mask has " + strconv.Itoa(len(levels)) + " distinct grey levels; expected 0/255, 0/1 or class ids: is this an image rather than a mask?"})

	// The same in colour.
	c := image.NewRGBA(image.Rect(0, 0, mw, mh))
	for i := range c.Pix {
		c.Pix[i] = uint8(1 + rng.IntN(250))
		if i%4 == 3 {
			c.Pix[i] = 255
		}
	}
	c.Pix[0], c.Pix[1], c.Pix[2] = 0, 0, 0
	runMaskCase(t, maskCase{file: encPNG(t, c), defects: mw*mh - 1, encoding: "rgb", warning: "mask has 127 distinct colours"})
}

func TestDecodeMask_JPEGPhotoWarns(t *testing.T) {
	g := grey(func(x, y int) uint8 { return uint8(60 + 8*x) })
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, g, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMask(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if m.Encoding != "jpeg" || len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "mid-grey") {
		t.Fatalf("encoding %q warnings %q", m.Encoding, m.Warnings)
	}
}

func TestDecodeMask_AllDefectWarns(t *testing.T) {
	g := grey(func(x, y int) uint8 { return 255 })
	runMaskCase(t, maskCase{file: encPNG(t, g), defects: mw * mh, encoding: "grey 0/255", warning: "every pixel"})
}

func TestDecodeMask_Empty(t *testing.T) {
	runMaskCase(t, maskCase{file: encPNG(t, rectGrey(0)), defects: 0, encoding: "grey empty"})
}

func TestDecodeMask_Broken(t *testing.T) {
	_, err := DecodeMask(strings.NewReader("not a mask"))
	if err == nil || !strings.Contains(err.Error(), "decode mask") {
		t.Fatalf("got %v", err)
	}
}

// BinaryMask has no format: decoder outputs only a JPEG produces get the JPEG rule, the rest the
// lossless one.
func TestBinaryMask_RuleByType(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 4, 1))
	copy(g.Pix, []uint8{0, 1, 127, 255})
	if m, w, h := BinaryMask(g); w != 4 || h != 1 || m[0] || !m[1] || !m[2] || !m[3] {
		t.Fatalf("grey: %v %dx%d", m, w, h)
	}
	ycc := image.NewYCbCr(image.Rect(0, 0, 2, 1), image.YCbCrSubsampleRatio444)
	ycc.Y[0], ycc.Y[1] = 20, 200
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = 128, 128
	}
	if m, _, _ := BinaryMask(ycc); m[0] || !m[1] {
		t.Fatalf("ycbcr (jpeg): %v", m)
	}
}

// A sub-image (non-zero origin, stride wider than the row) goes through the fast paths correctly.
func TestMaskOf_SubImage(t *testing.T) {
	big := image.NewGray(image.Rect(0, 0, mw+6, mh+4))
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			if inRect(x, y) {
				big.SetGray(3+x, 2+y, color.Gray{255})
			}
		}
	}
	sub := big.SubImage(image.Rect(3, 2, 3+mw, 2+mh))
	m := MaskOf(sub, "png")
	if m.W != mw || m.H != mh || m.Defects != rectPixels {
		t.Fatalf("%dx%d, %d defects", m.W, m.H, m.Defects)
	}
	wantRect(t, m)
}

// sharedCases is the folder of reference cases beside the repository (../shared/cases), or "".
func sharedCases(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	cases := filepath.Join(dir, "..", "shared", "cases")
	if _, err := os.Stat(cases); err != nil {
		return ""
	}
	return cases
}

// Every mask encoding among the shared cases reads with the count that an independent implementation
// found (expected.json's anomalous_pixels is the sum over the case's masks).
func TestDecodeMask_SharedCases(t *testing.T) {
	cases := sharedCases(t)
	if cases == "" {
		t.Skip("../shared/cases (the project's shared reference cases) is absent beside the repository")
	}
	dirs, _ := filepath.Glob(filepath.Join(cases, "masks-*"))
	if len(dirs) == 0 {
		t.Skipf("no masks-* case in %s", cases)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var exp struct {
				Counts struct {
					AnomalousPixels int `json:"anomalous_pixels"`
				} `json:"counts"`
			}
			if err := json.Unmarshal(raw, &exp); err != nil {
				t.Fatalf("expected.json: %v", err)
			}
			total, files := 0, 0
			gts, _ := filepath.Glob(filepath.Join(dir, "*", "ground_truth"))
			for _, gt := range gts {
				err := filepath.WalkDir(gt, func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() || !IsImageName(p) {
						return err
					}
					f, err := os.Open(p)
					if err != nil {
						return err
					}
					defer f.Close()
					m, err := DecodeMask(f)
					if err != nil {
						t.Errorf("%s: %v", p, err)
						return nil
					}
					if m.Defects == 0 || len(m.Warnings) != 0 {
						t.Errorf("%s (%s): %d defect pixels, warnings %q", p, m.Encoding, m.Defects, m.Warnings)
					}
					t.Logf("%s: %s, %d defect pixels", filepath.Base(p), m.Encoding, m.Defects)
					total += m.Defects
					files++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if files == 0 || total != exp.Counts.AnomalousPixels {
				t.Fatalf("%d masks with %d defect pixels, expected.json says %d", files, total, exp.Counts.AnomalousPixels)
			}
		})
	}
}
