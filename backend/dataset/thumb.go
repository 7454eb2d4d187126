//go:build !js

package dataset

import (
	"image"
	"image/color"
)

// rowRGB writes row y of img (relative to its bounds) as packed RGB into dst. The common decoder outputs
// (RGBA and NRGBA from PNG, Gray from grey PNG, YCbCr from JPEG) take a direct path; anything else goes
// through the generic colour model.
func rowRGB(img image.Image, y int, dst []uint8) {
	b := img.Bounds()
	w := b.Dx()
	switch m := img.(type) {
	case *image.RGBA:
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
		for x := 0; x < w; x++ {
			dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
		}
	case *image.NRGBA:
		// Alpha is dropped, as for the model's input (PIL convert("RGB")).
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
		for x := 0; x < w; x++ {
			dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
		}
	case *image.Gray:
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
		for x := 0; x < w; x++ {
			v := row[x]
			dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
		}
	case *image.YCbCr:
		for x := 0; x < w; x++ {
			yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
			ci := m.COffset(b.Min.X+x, b.Min.Y+y)
			dst[3*x], dst[3*x+1], dst[3*x+2] = color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
		}
	default:
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			dst[3*x], dst[3*x+1], dst[3*x+2] = c.R, c.G, c.B
		}
	}
}

// boxScale shrinks img to tw x th by averaging every source pixel into the one output pixel whose
// footprint holds it: a box filter, which is what a thumbnail needs (no aliasing of fine texture) at a
// fraction of the cost of a general resampling kernel. It is meant for shrinking; tw, th <= the source size.
func boxScale(img image.Image, tw, th int) *image.RGBA {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	colOf := make([]int, sw)
	for x := range colOf {
		colOf[x] = x * tw / sw
	}
	sums := make([]uint32, 3*tw)
	counts := make([]uint32, tw)
	row := make([]uint8, 3*sw)
	out := image.NewRGBA(image.Rect(0, 0, tw, th))
	oy := 0
	rows := uint32(0)
	flush := func() {
		p := out.Pix[oy*out.Stride:]
		for x := 0; x < tw; x++ {
			n := counts[x] * rows
			if n == 0 {
				continue
			}
			p[4*x] = uint8((sums[3*x] + n/2) / n)
			p[4*x+1] = uint8((sums[3*x+1] + n/2) / n)
			p[4*x+2] = uint8((sums[3*x+2] + n/2) / n)
			p[4*x+3] = 255
		}
		clear(sums)
		rows = 0
	}
	for x := range colOf {
		counts[colOf[x]]++
	}
	for y := 0; y < sh; y++ {
		if ny := y * th / sh; ny != oy {
			flush()
			oy = ny
		}
		rowRGB(img, y, row)
		for x, c := range colOf {
			sums[3*c] += uint32(row[3*x])
			sums[3*c+1] += uint32(row[3*x+1])
			sums[3*c+2] += uint32(row[3*x+2])
		}
		rows++
	}
	flush()
	return out
}
