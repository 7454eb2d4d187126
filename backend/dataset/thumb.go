//go:build !js

package dataset

import (
	"image"

	"github.com/rdre-studio/studio/backend/imageio"
)

// boxScale shrinks img to tw x th by averaging every source pixel into the one output pixel whose
// footprint holds it: a box filter, which is what a thumbnail needs (no aliasing of fine texture) at a
// fraction of the cost of a general resampling kernel. It is meant for shrinking; tw, th <= the source size.
func boxScale(img image.Image, tw, th int) *image.RGBA {
	rgb := imageio.NewRGBRows(img) // the model's view of the pixels: alpha dropped, grey replicated
	sw, sh := rgb.Size()
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
		rgb.Row(y, row)
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
