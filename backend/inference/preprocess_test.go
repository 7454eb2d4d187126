//go:build !js

package inference

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/resample"
)

// Pre-processing reference: today's path, packed RGB from imageio.RGB8 and resample.Preprocess.
func referencePreprocess(img image.Image, size int, mean, std [3]float32) ([]float32, error) {
	pix, w, h := imageio.RGB8(img)
	return resample.Preprocess(pix, w, h, size, mean, std)
}

type subImager interface {
	image.Image
	SubImage(image.Rectangle) image.Image
}

// smooth fills b with a gradient plus noise, so resizing mixes neighbouring values the way photos do.
func smooth(r *rand.Rand, b []uint8, stride int) {
	for i := range b {
		b[i] = uint8(int(i%stride)*3 + i/stride + r.Intn(40))
	}
}

// testImages returns one image of every type the decoders produce (and two they do not) on rect.
func testImages(r *rand.Rand, rect image.Rectangle) map[string]subImager {
	w := rect.Dx()
	out := map[string]subImager{}
	nrgba := image.NewNRGBA(rect)
	smooth(r, nrgba.Pix, 4*w)
	out["NRGBA"] = nrgba
	rgba := image.NewRGBA(rect)
	smooth(r, rgba.Pix, 4*w)
	for i := 3; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i] = 255
		if r.Intn(8) == 0 { // some translucent (premultiplied) pixels
			a := uint8(r.Intn(256))
			rgba.Pix[i] = a
			for c := 1; c <= 3; c++ {
				rgba.Pix[i-c] = uint8(uint32(rgba.Pix[i-c]) * uint32(a) / 255)
			}
		}
	}
	out["RGBA"] = rgba
	gray := image.NewGray(rect)
	smooth(r, gray.Pix, w)
	out["Gray"] = gray
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420} {
		m := image.NewYCbCr(rect, ratio)
		smooth(r, m.Y, m.YStride)
		smooth(r, m.Cb, m.CStride)
		smooth(r, m.Cr, m.CStride)
		out["YCbCr"+strings.TrimPrefix(ratio.String(), "YCbCrSubsampleRatio")] = m
	}
	pal := make(color.Palette, 200)
	for i := range pal {
		pal[i] = color.NRGBA{uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(128 + r.Intn(128))}
	}
	p := image.NewPaletted(rect, pal)
	for i := range p.Pix {
		p.Pix[i] = uint8(r.Intn(len(pal)))
	}
	out["Paletted"] = p
	g16 := image.NewGray16(rect) // generic path
	smooth(r, g16.Pix, 2*w)
	out["Gray16"] = g16
	cmyk := image.NewCMYK(rect) // generic path
	smooth(r, cmyk.Pix, 4*w)
	out["CMYK"] = cmyk
	return out
}

func sameBits(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

// The pre-processing of Predict is bit for bit today's (RGB8 + resample.Preprocess) for every image type,
// on whole images and sub-images with non-zero origins, shrinking and enlarging.
func TestPreprocessInto_BitIdentical(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	mean, std := [3]float32{0.485, 0.456, 0.406}, [3]float32{0.229, 0.224, 0.225}
	cases := []struct {
		rect image.Rectangle
		size int
	}{
		{image.Rect(0, 0, 90, 70), 32},
		{image.Rect(0, 0, 31, 47), 64}, // enlarged
		{image.Rect(5, 3, 64, 64), 64},
		{image.Rect(-9, -4, 40, 41), 17},
		{image.Rect(0, 0, 1, 1), 8},
	}
	n := 0
	for _, c := range cases {
		for name, img := range testImages(r, c.rect) {
			subs := []image.Image{img}
			if c.rect.Dx() > 8 && c.rect.Dy() > 8 {
				subs = append(subs, img.SubImage(image.Rect(c.rect.Min.X+3, c.rect.Min.Y+1, c.rect.Max.X-2, c.rect.Max.Y-5)),
					img.SubImage(image.Rect(c.rect.Min.X+2, c.rect.Min.Y+2, c.rect.Max.X-1, c.rect.Max.Y)))
			}
			for _, sub := range subs {
				label := fmt.Sprintf("%s %v -> %d", name, sub.Bounds(), c.size)
				want, err := referencePreprocess(sub, c.size, mean, std)
				if err != nil {
					t.Fatalf("%s: reference: %v", label, err)
				}
				got := make([]float32, 3*c.size*c.size)
				w, h, err := preprocessInto(got, sub, c.size, mean, std)
				if err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				if w != sub.Bounds().Dx() || h != sub.Bounds().Dy() {
					t.Errorf("%s: size %dx%d", label, w, h)
				}
				if i, ok := sameBits(got, want); !ok {
					t.Errorf("%s: differs at %d: %v, today %v", label, i, got[i], want[i])
				}
				n++
			}
		}
	}
	t.Logf("%d images compared", n)
}

// Decoded files: what the PNG and JPEG decoders return for grey, RGB, RGBA and palette PNGs and for
// colour and grey JPEGs goes through the direct path and gives today's tensor.
func TestPreprocessInto_DecodedFiles(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	rect := image.Rect(0, 0, 120, 90)
	imgs := testImages(r, rect)
	rgb := image.NewRGBA(rect) // opaque: the decoder returns *image.RGBA for an RGB PNG
	smooth(r, rgb.Pix, 4*rect.Dx())
	for i := 3; i < len(rgb.Pix); i += 4 {
		rgb.Pix[i] = 255
	}
	type file struct {
		name, format string
		img          image.Image
		want         string // the decoded type
	}
	files := []file{
		{"grey png", "png", imgs["Gray"], "*image.Gray"},
		{"rgb png", "png", rgb, "*image.RGBA"},
		{"rgba png", "png", imgs["NRGBA"], "*image.NRGBA"},
		{"palette png", "png", imgs["Paletted"], "*image.Paletted"},
		{"colour jpeg", "jpeg", rgb, "*image.YCbCr"},
		{"grey jpeg", "jpeg", imgs["Gray"], "*image.Gray"},
	}
	for _, f := range files {
		var buf bytes.Buffer
		var err error
		if f.format == "png" {
			err = png.Encode(&buf, f.img)
		} else {
			err = jpeg.Encode(&buf, f.img, &jpeg.Options{Quality: 90})
		}
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := imageio.Decode(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", img); got != f.want {
			t.Fatalf("%s decodes to %s, want %s", f.name, got, f.want)
		}
		if !imageio.NewRGBRows(img).Direct() {
			t.Errorf("%s (%T): generic path", f.name, img)
		}
		want, err := referencePreprocess(img, 48, [3]float32{0.5, 0.5, 0.5}, [3]float32{0.5, 0.5, 0.5})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(want))
		if _, _, err := preprocessInto(got, img, 48, [3]float32{0.5, 0.5, 0.5}, [3]float32{0.5, 0.5, 0.5}); err != nil {
			t.Fatal(err)
		}
		if i, ok := sameBits(got, want); !ok {
			t.Errorf("%s: differs at %d", f.name, i)
		}
	}
}

func TestPreprocessInto_Errors(t *testing.T) {
	mean, std := [3]float32{0, 0, 0}, [3]float32{1, 1, 1}
	dst := make([]float32, 3*16*16)
	empty := image.NewRGBA(image.Rect(3, 3, 3, 10))
	_, _, err := preprocessInto(dst, empty, 16, mean, std)
	_, rerr := referencePreprocess(empty, 16, mean, std)
	if err == nil || rerr == nil || err.Error() != rerr.Error() {
		t.Errorf("empty image: %v, today %v", err, rerr)
	}
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for _, s := range [][3]float32{{1, 0, 1}, {1, 1, float32(math.NaN())}} {
		_, _, err := preprocessInto(dst, img, 16, mean, s)
		_, rerr := referencePreprocess(img, 16, mean, s)
		if err == nil || rerr == nil || err.Error() != rerr.Error() {
			t.Errorf("std %v: %v, today %v", s, err, rerr)
		}
	}
	if _, _, err := preprocessInto(dst[:10], img, 16, mean, std); err == nil {
		t.Errorf("short output accepted")
	}
}
