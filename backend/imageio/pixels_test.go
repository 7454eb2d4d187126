//go:build !js

package imageio

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math/rand"
	"strings"
	"testing"
)

// genericRGB8 is the reference: every pixel through At and color.NRGBAModel, the path RGB8 takes for
// every type it has no loop for.
func genericRGB8(img image.Image) []uint8 {
	b := img.Bounds()
	pix := make([]uint8, 0, 3*b.Dx()*b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			pix = append(pix, c.R, c.G, c.B)
		}
	}
	return pix
}

func randBytes(r *rand.Rand, b []uint8) {
	for i := range b {
		b[i] = uint8(r.Intn(256))
	}
}

// Rectangles with odd, negative and zero origins, odd sizes and one-pixel sides: the chroma index of a
// subsampled YCbCr depends on the parity of the origin.
var testRects = []image.Rectangle{
	image.Rect(0, 0, 37, 23),
	image.Rect(3, 5, 40, 18),
	image.Rect(-7, -5, 12, 9),
	image.Rect(-3, -1, 0, 0),
	image.Rect(1, 1, 2, 2),
	image.Rect(0, 0, 1, 17),
	image.Rect(5, 0, 64, 1),
}

// Sub-rectangles taken from each image, relative to its rectangle's origin.
func subRects(r image.Rectangle) []image.Rectangle {
	out := []image.Rectangle{r}
	if r.Dx() > 4 && r.Dy() > 4 {
		out = append(out,
			image.Rect(r.Min.X+1, r.Min.Y+1, r.Max.X-2, r.Max.Y-1),
			image.Rect(r.Min.X+2, r.Min.Y+3, r.Max.X-1, r.Max.Y-2),
			image.Rect(r.Min.X+3, r.Min.Y+2, r.Min.X+4, r.Min.Y+3),
		)
	}
	return out
}

type subImager interface {
	image.Image
	SubImage(image.Rectangle) image.Image
}

func randomImages(r *rand.Rand, rect image.Rectangle) map[string]subImager {
	out := map[string]subImager{}
	nrgba := image.NewNRGBA(rect)
	randBytes(r, nrgba.Pix)
	out["NRGBA"] = nrgba

	rgba := image.NewRGBA(rect) // valid premultiplied colours, with opaque, clear and translucent pixels
	for i := 0; i < len(rgba.Pix); i += 4 {
		a := uint8(r.Intn(256))
		switch r.Intn(4) {
		case 0:
			a = 255
		case 1:
			a = 0
		}
		for c := 0; c < 3; c++ {
			rgba.Pix[i+c] = uint8(r.Intn(int(a) + 1))
		}
		rgba.Pix[i+3] = a
	}
	out["RGBA"] = rgba
	bad := image.NewRGBA(rect) // colour above alpha: not valid premultiplied, still converted the same way
	randBytes(r, bad.Pix)
	out["RGBA-invalid"] = bad
	opaque := image.NewRGBA(rect) // what the PNG decoder returns for an RGB file
	randBytes(r, opaque.Pix)
	for i := 3; i < len(opaque.Pix); i += 4 {
		opaque.Pix[i] = 255
	}
	out["RGBA-opaque"] = opaque

	gray := image.NewGray(rect)
	randBytes(r, gray.Pix)
	out["Gray"] = gray

	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
		m := image.NewYCbCr(rect, ratio)
		randBytes(r, m.Y)
		randBytes(r, m.Cb)
		randBytes(r, m.Cr)
		out["YCbCr"+strings.TrimPrefix(ratio.String(), "YCbCrSubsampleRatio")] = m
	}

	for _, n := range []int{1, 2, 7, 256} {
		pal := make(color.Palette, n)
		for i := range pal {
			switch i % 4 {
			case 0:
				pal[i] = color.RGBA{uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(r.Intn(256)), 255}
			case 1:
				pal[i] = color.NRGBA{uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(r.Intn(256))}
			case 2:
				pal[i] = color.Gray{uint8(r.Intn(256))}
			default:
				pal[i] = color.YCbCr{uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(r.Intn(256))}
			}
		}
		p := image.NewPaletted(rect, pal)
		for i := range p.Pix {
			p.Pix[i] = uint8(r.Intn(n))
		}
		out[fmt.Sprintf("Paletted%d", n)] = p
	}

	// Types without a loop of their own: the generic path.
	g16 := image.NewGray16(rect)
	randBytes(r, g16.Pix)
	out["Gray16"] = g16
	n64 := image.NewNRGBA64(rect)
	randBytes(r, n64.Pix)
	out["NRGBA64"] = n64
	cmyk := image.NewCMYK(rect)
	randBytes(r, cmyk.Pix)
	out["CMYK"] = cmyk
	alpha := image.NewAlpha(rect)
	randBytes(r, alpha.Pix)
	out["Alpha"] = alpha
	return out
}

var directTypes = map[string]bool{"NRGBA": true, "RGBA": true, "RGBA-invalid": true, "RGBA-opaque": true, "Gray": true,
	"YCbCr444": true, "YCbCr422": true, "YCbCr420": true, "YCbCr440": true, "YCbCr411": true, "YCbCr410": true,
	"Paletted1": true, "Paletted2": true, "Paletted7": true, "Paletted256": true}

// The direct loops give the bytes of RGB8 (today's conversion) and of the generic path, for every type,
// on whole images and on sub-images whose bounds do not start at the origin.
func TestRGB8Into_MatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	compared, skipped := 0, 0
	for _, rect := range testRects {
		for name, img := range randomImages(r, rect) {
			for _, sr := range subRects(rect) {
				sub := img.SubImage(sr)
				label := fmt.Sprintf("%s %v of %v", name, sr, rect)
				rows := NewRGBRows(sub)
				if rows.Direct() != directTypes[name] {
					t.Errorf("%s: Direct() = %v", label, rows.Direct())
				}
				var want, got []uint8
				var ww, wh, gw, gh int
				refPanic := panics(func() { want, ww, wh = RGB8(sub) })
				if gotPanic := panics(func() { got, gw, gh = RGB8Into(nil, sub) }); gotPanic != refPanic {
					t.Fatalf("%s: RGB8 panics: %v, RGB8Into panics: %v", label, refPanic, gotPanic)
				} else if refPanic {
					// image.YCbCr's own At indexes out of range for some subsampled sub-images at negative
					// origins (truncating division); the direct loop computes the same index and fails alike.
					skipped++
					continue
				}
				compared++
				if gw != ww || gh != wh || gw != sr.Dx() || gh != sr.Dy() {
					t.Fatalf("%s: size %dx%d, RGB8 says %dx%d", label, gw, gh, ww, wh)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: RGB8Into differs from RGB8 at byte %d", label, firstDiff(got, want))
				}
				// NRGBA: RGB8 (and so RGB8Into) copies the stored colour, which is what PIL does; the colour
				// model would premultiply and divide back. Every other type must equal the colour model.
				if name != "NRGBA" {
					if g := genericRGB8(sub); !bytes.Equal(got, g) {
						t.Errorf("%s: RGB8Into differs from At+NRGBAModel at byte %d", label, firstDiff(got, g))
					}
				}
				// A reused, larger buffer gives the same bytes.
				buf := make([]uint8, len(want)+17)
				for i := range buf {
					buf[i] = 0xA5
				}
				got2, _, _ := RGB8Into(buf, sub)
				if !bytes.Equal(got2, want) || &got2[:1][0] != &buf[:1][0] && len(want) > 0 {
					t.Errorf("%s: RGB8Into into a reused buffer differs or did not reuse it", label)
				}
			}
		}
	}
	t.Logf("%d images compared, %d on which image.YCbCr.At itself panics", compared, skipped)
	if compared < 250 {
		t.Errorf("only %d images compared", compared)
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

func firstDiff(a, b []uint8) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Every (Y, Cb, Cr) triple: the conversion of the YCbCr loop (putYCbCr) is color.YCbCrToRGB and the top
// byte of color.YCbCr.RGBA, which is what At + NRGBAModel computes.
func TestPutYCbCr_AllValues(t *testing.T) {
	var d [3]uint8
	for y := 0; y < 256; y++ {
		for cb := 0; cb < 256; cb++ {
			for cr := 0; cr < 256; cr++ {
				putYCbCr(d[:], uint8(y), uint8(cb), uint8(cr))
				r, g, b := color.YCbCrToRGB(uint8(y), uint8(cb), uint8(cr))
				R, G, B, _ := color.YCbCr{uint8(y), uint8(cb), uint8(cr)}.RGBA()
				if d != [3]uint8{r, g, b} || d != [3]uint8{uint8(R >> 8), uint8(G >> 8), uint8(B >> 8)} {
					t.Fatalf("YCbCr(%d,%d,%d): %v, YCbCrToRGB %d,%d,%d, RGBA>>8 %d,%d,%d", y, cb, cr, d, r, g, b, R>>8, G>>8, B>>8)
				}
			}
		}
	}
}

// Every (value, alpha) pair of an RGBA pixel: unpremul is NRGBAModel's conversion.
func TestUnpremul_AllValues(t *testing.T) {
	for a := 0; a < 256; a++ {
		for v := 0; v < 256; v++ {
			c := color.NRGBAModel.Convert(color.RGBA{uint8(v), 0, 0, uint8(a)}).(color.NRGBA)
			want := c.R
			got := uint8(v)
			if a != 255 {
				got = unpremul(uint8(v), uint8(a))
			}
			if got != want {
				t.Fatalf("RGBA v=%d a=%d: %d, NRGBAModel says %d", v, a, got, want)
			}
		}
	}
}

// A palette image the generic path cannot read (an index past the palette, a nil colour, no palette)
// keeps the generic path, so it behaves exactly as before.
func TestRGBRows_PaletteFallback(t *testing.T) {
	rect := image.Rect(0, 0, 4, 3)
	short := image.NewPaletted(rect, color.Palette{color.Black, color.White})
	short.Pix[5] = 2
	nilColour := image.NewPaletted(rect, color.Palette{color.Black, nil})
	empty := image.NewPaletted(rect, nil)
	for name, p := range map[string]*image.Paletted{"index past the end": short, "nil colour": nilColour, "no palette": empty} {
		if NewRGBRows(p).Direct() {
			t.Errorf("%s: took the direct path", name)
		}
	}
	// An index past the end of the part of the image that is read does not matter.
	p := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	p.Pix[0] = 9
	if !NewRGBRows(p.SubImage(image.Rect(1, 1, 4, 4))).Direct() {
		t.Errorf("sub-image without the bad index: generic path")
	}
}

func TestRGB8Into_Empty(t *testing.T) {
	for _, img := range []image.Image{image.NewRGBA(image.Rectangle{}), image.NewYCbCr(image.Rect(3, 3, 3, 9), image.YCbCrSubsampleRatio420), image.NewGray(image.Rect(0, 0, 5, 0))} {
		pix, w, h := RGB8Into(nil, img)
		if len(pix) != 0 || w*h != 0 {
			t.Errorf("%T %v: %d bytes, %dx%d", img, img.Bounds(), len(pix), w, h)
		}
	}
}
