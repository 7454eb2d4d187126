//go:build !js

package imageio

import (
	"image"
	"image/color"
)

// Pixel access without per-pixel interface calls.
//
// image.Image.At boxes every pixel into a color.Color (an allocation for most types) and converting it
// with a colour model is a second dynamic call; on a 900x900 image that was a third of the CPU time of
// inference. RGBRows reads the decoders' common outputs (8-bit grey, RGB and RGBA PNGs, JPEGs, palette
// images) straight from their pixel slices and falls back to At + color.NRGBAModel for everything else.
// Both paths give the same bytes: the direct loops repeat the arithmetic of the colour model (the tests
// compare them on random images of every type, sub-images included).

// RGBRows reads an image row by row as packed 8-bit RGB: the values RGB8 returns (alpha dropped the way
// PIL's convert("RGB") drops it; grey replicated into three channels). Make one with NewRGBRows; it is
// not safe for concurrent use, but several RGBRows may read the same image at once.
type RGBRows struct {
	img  image.Image
	b    image.Rectangle
	kind pixKind
	pal  *[256][3]uint8 // *image.Paletted: the RGB of every palette index
}

type pixKind uint8

const (
	kindGeneric pixKind = iota
	kindNRGBA
	kindRGBA
	kindGray
	kindYCbCr
	kindPaletted
)

// NewRGBRows prepares reading img. It is cheap, except for a palette image, whose palette (at most 256
// colours) is converted once.
func NewRGBRows(img image.Image) *RGBRows {
	r := &RGBRows{img: img, b: img.Bounds()}
	switch m := img.(type) {
	case *image.NRGBA:
		r.kind = kindNRGBA
	case *image.RGBA:
		r.kind = kindRGBA
	case *image.Gray:
		r.kind = kindGray
	case *image.YCbCr:
		switch m.SubsampleRatio {
		case image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
			image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
			r.kind = kindYCbCr
		}
	case *image.Paletted:
		if pal, ok := paletteRGB(m); ok {
			r.kind, r.pal = kindPaletted, pal
		}
	}
	return r
}

// Direct reports whether the image is read by a direct loop (false: through At and a colour model).
func (r *RGBRows) Direct() bool { return r.kind != kindGeneric }

// Size returns the width and height of the image.
func (r *RGBRows) Size() (w, h int) { return r.b.Dx(), r.b.Dy() }

// Row writes row y (0 = the top row of the image's bounds) into dst[:3*w] as packed RGB. dst must hold
// at least 3*w bytes.
func (r *RGBRows) Row(y int, dst []uint8) {
	w := r.b.Dx()
	dst = dst[:3*w]
	py := r.b.Min.Y + y
	switch r.kind {
	case kindNRGBA:
		m := r.img.(*image.NRGBA)
		// The straight (non-premultiplied) colour as stored: alpha is dropped, as RGB8 does.
		src := m.Pix[m.PixOffset(r.b.Min.X, py):][:4*w]
		for x := 0; x < w; x++ {
			s, d := src[4*x:4*x+3:4*x+3], dst[3*x:3*x+3:3*x+3]
			d[0], d[1], d[2] = s[0], s[1], s[2]
		}
	case kindRGBA:
		m := r.img.(*image.RGBA)
		src := m.Pix[m.PixOffset(r.b.Min.X, py):][:4*w]
		for x := 0; x < w; x++ {
			s, d := src[4*x:4*x+4:4*x+4], dst[3*x:3*x+3:3*x+3]
			if a := s[3]; a == 0xff {
				d[0], d[1], d[2] = s[0], s[1], s[2]
			} else {
				d[0], d[1], d[2] = unpremul(s[0], a), unpremul(s[1], a), unpremul(s[2], a)
			}
		}
	case kindGray:
		m := r.img.(*image.Gray)
		src := m.Pix[m.PixOffset(r.b.Min.X, py):][:w]
		for x, v := range src {
			d := dst[3*x : 3*x+3 : 3*x+3]
			d[0], d[1], d[2] = v, v, v
		}
	case kindYCbCr:
		ycbcrRow(r.img.(*image.YCbCr), r.b, py, dst)
	case kindPaletted:
		m := r.img.(*image.Paletted)
		src := m.Pix[m.PixOffset(r.b.Min.X, py):][:w]
		pal := r.pal
		for x, i := range src {
			c, d := &pal[i], dst[3*x:3*x+3:3*x+3]
			d[0], d[1], d[2] = c[0], c[1], c[2]
		}
	default:
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(r.img.At(r.b.Min.X+x, py)).(color.NRGBA)
			dst[3*x], dst[3*x+1], dst[3*x+2] = c.R, c.G, c.B
		}
	}
}

// unpremul is color.NRGBAModel's conversion of one premultiplied 8-bit channel v with alpha a < 255,
// done at 16 bits as the model does it (including its truncation when v > a), so the byte is the same.
func unpremul(v, a uint8) uint8 {
	if a == 0 {
		return 0
	}
	v16, a16 := uint32(v)*0x101, uint32(a)*0x101
	return uint8((v16 * 0xffff / a16) >> 8)
}

// ycbcrRow converts row py (absolute) of a YCbCr image. The chroma index follows image.YCbCr.COffset for
// each subsampling ratio, with Go's truncating division, so sub-images at odd or negative origins read the
// same samples as At; the colour is color.YCbCrToRGB, which equals the top byte of YCbCr.RGBA.
func ycbcrRow(m *image.YCbCr, b image.Rectangle, py int, dst []uint8) {
	w := b.Dx()
	ys := m.Y[m.YOffset(b.Min.X, py):][:w]
	minX, minY := m.Rect.Min.X, m.Rect.Min.Y
	var crow int // offset of the chroma row
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio410:
		crow = (py/2 - minY/2) * m.CStride
	default:
		crow = (py - minY) * m.CStride
	}
	cb, cr := m.Cb[crow:], m.Cr[crow:]
	x0 := b.Min.X
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio440:
		cb, cr = cb[x0-minX:][:w], cr[x0-minX:][:w]
		for i, yv := range ys {
			d := dst[3*i : 3*i+3 : 3*i+3]
			putYCbCr(d, yv, cb[i], cr[i])
		}
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		base := minX / 2
		for i, yv := range ys {
			ci := (x0+i)/2 - base
			d := dst[3*i : 3*i+3 : 3*i+3]
			putYCbCr(d, yv, cb[ci], cr[ci])
		}
	default: // 4:1:1, 4:1:0
		base := minX / 4
		for i, yv := range ys {
			ci := (x0+i)/4 - base
			d := dst[3*i : 3*i+3 : 3*i+3]
			putYCbCr(d, yv, cb[ci], cr[ci])
		}
	}
}

// putYCbCr writes color.YCbCrToRGB(y, cb, cr) into d[0:3]: the same arithmetic, written so that it
// inlines (the library function does not).
func putYCbCr(d []uint8, y, cb, cr uint8) {
	yy1 := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	d[0] = clip16(yy1 + 91881*cr1)
	d[1] = clip16(yy1 - 22554*cb1 - 46802*cr1)
	d[2] = clip16(yy1 + 116130*cb1)
}

// clip16 is YCbCrToRGB's rounding of a 16.16 fixed-point value to a byte, clamped to 0..255 (there by a
// branch on the top byte; min and max give the same values without one).
func clip16(v int32) uint8 {
	return uint8(min(max(v>>16, 0), 255))
}

// paletteRGB converts every palette entry once with the colour model At + NRGBAModel would use per
// pixel. It refuses (false) a palette that the generic path would fail on: an empty palette, a nil
// colour, or a pixel index past the palette's end; those keep the generic path and its behaviour.
func paletteRGB(m *image.Paletted) (*[256][3]uint8, bool) {
	n := len(m.Palette)
	if n == 0 {
		return nil, false
	}
	var pal [256][3]uint8
	for i, c := range m.Palette {
		if i >= 256 {
			break
		}
		if c == nil {
			return nil, false
		}
		v := color.NRGBAModel.Convert(c).(color.NRGBA)
		pal[i] = [3]uint8{v.R, v.G, v.B}
	}
	if n < 256 {
		b := m.Rect
		w := b.Dx()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for _, i := range m.Pix[m.PixOffset(b.Min.X, y):][:w] {
				if int(i) >= n {
					return nil, false
				}
			}
		}
	}
	return &pal, true
}

// RGB8Into is RGB8 writing into dst when it is large enough (a new slice otherwise): packed 8-bit RGB,
// row-major, the same bytes as RGB8 for every image type, without a per-pixel interface call for the
// common ones. It returns the slice written (length 3*w*h) and the size.
func RGB8Into(dst []uint8, img image.Image) (pix []uint8, w, h int) {
	r := NewRGBRows(img)
	w, h = r.Size()
	n := 3 * w * h
	if cap(dst) >= n {
		pix = dst[:n]
	} else {
		pix = make([]uint8, n)
	}
	for y := 0; y < h; y++ {
		r.Row(y, pix[3*w*y:])
	}
	return pix, w, h
}
