//go:build !js

package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// thumbSide is the longer side of each gallery panel, in pixels: big enough to see a defect, small
// enough that a dozen of them keep the HTML file well under a megabyte.
const thumbSide = 208

// mapRange returns the score range of the heatmap colour scale: the lowest and highest pixel scores of the
// whole evaluation (the thresholds at the ends of the pixel ROC curve), so that every thumbnail uses the
// same colours for the same scores. ok is false when the curve does not carry them.
func mapRange(r *sm.Result) (lo, hi float64, ok bool) {
	if r == nil || r.Curves == nil {
		return 0, 0, false
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, t := range r.Curves.PixelROC.Threshold {
		if t != nil {
			lo = math.Min(lo, *t)
			hi = math.Max(hi, *t)
		}
	}
	return lo, hi, hi > lo
}

// renderPanel draws the image with the mask contour (left) and the heatmap blended over it with the same
// contour (right) into one JPEG and returns it as a data: URI. Scores are mapped to colours over [lo, hi];
// lo >= hi means the map's own range.
func renderPanel(g *GalleryImage, lo, hi float64) (string, error) {
	if g == nil || g.Image == nil {
		return "", fmt.Errorf("gallery image: no picture")
	}
	b := g.Image.Bounds()
	if g.W != b.Dx() || g.H != b.Dy() {
		return "", fmt.Errorf("gallery image: map %dx%d but image %dx%d", g.W, g.H, b.Dx(), b.Dy())
	}
	if len(g.Map) != g.W*g.H {
		return "", fmt.Errorf("gallery image: map has %d values, want %dx%d", len(g.Map), g.W, g.H)
	}
	if g.Mask != nil && len(g.Mask) != g.W*g.H {
		return "", fmt.Errorf("gallery image: mask has %d values, want %dx%d", len(g.Mask), g.W, g.H)
	}
	if !(hi > lo) {
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, v := range g.Map {
			lo = math.Min(lo, float64(v))
			hi = math.Max(hi, float64(v))
		}
		if !(hi > lo) {
			hi = lo + 1
		}
	}
	tw, th := thumbSide, thumbSide
	if g.W >= g.H {
		th = max(1, g.H*thumbSide/g.W)
	} else {
		tw = max(1, g.W*thumbSide/g.H)
	}
	const gap = 4
	out := image.NewRGBA(image.Rect(0, 0, 2*tw+gap, th))
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	px := pixelReader(g.Image)
	// Each thumbnail pixel averages the source pixels it covers (a box filter), so thin defects and
	// narrow hot spots survive the downscaling instead of aliasing away.
	small := make([]bool, tw*th)
	for ty := 0; ty < th; ty++ {
		y0, y1 := ty*g.H/th, max(ty*g.H/th+1, (ty+1)*g.H/th)
		for tx := 0; tx < tw; tx++ {
			x0, x1 := tx*g.W/tw, max(tx*g.W/tw+1, (tx+1)*g.W/tw)
			var r, gg, bb, s float64
			masked := 0
			n := 0
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					cr, cg, cb := px(b.Min.X+x, b.Min.Y+y)
					r += float64(cr)
					gg += float64(cg)
					bb += float64(cb)
					i := y*g.W + x
					s += float64(g.Map[i])
					if g.Mask != nil && g.Mask[i] {
						masked++
					}
					n++
				}
			}
			fn := float64(n)
			r, gg, bb, s = r/fn, gg/fn, bb/fn, s/fn
			// Any defect pixel marks the thumbnail pixel, so thin scratches survive a 4x reduction.
			small[ty*tw+tx] = masked > 0
			out.SetRGBA(tx, ty, color.RGBA{uint8(r), uint8(gg), uint8(bb), 255})
			t := math.Min(1, math.Max(0, (s-lo)/(hi-lo)))
			hc := heatColor(t)
			a := 0.25 + 0.5*t
			out.SetRGBA(tw+gap+tx, ty, color.RGBA{
				uint8((1-a)*r + a*float64(hc.R)),
				uint8((1-a)*gg + a*float64(hc.G)),
				uint8((1-a)*bb + a*float64(hc.B)),
				255,
			})
		}
	}
	// The contour is the mask's inner boundary, drawn on both panels.
	contour := color.RGBA{0, 255, 120, 255}
	for ty := 0; ty < th; ty++ {
		for tx := 0; tx < tw; tx++ {
			if !small[ty*tw+tx] {
				continue
			}
			edge := tx == 0 || ty == 0 || tx == tw-1 || ty == th-1 ||
				!small[ty*tw+tx-1] || !small[ty*tw+tx+1] || !small[(ty-1)*tw+tx] || !small[(ty+1)*tw+tx]
			if edge {
				out.SetRGBA(tx, ty, contour)
				out.SetRGBA(tw+gap+tx, ty, contour)
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 85}); err != nil {
		return "", fmt.Errorf("encode gallery thumbnail: %w", err)
	}
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// heatStops is a perceptually ordered dark-blue → cyan → yellow → red scale (close to "turbo"), which
// reads well blended over grey industrial images.
var heatStops = [...][3]float64{
	{48, 18, 59}, {70, 134, 251}, {27, 229, 181}, {164, 252, 60}, {251, 185, 56}, {228, 68, 11}, {122, 4, 3},
}

func heatColor(t float64) color.RGBA {
	n := len(heatStops) - 1
	p := t * float64(n)
	i := min(n-1, int(p))
	f := p - float64(i)
	a, b := heatStops[i], heatStops[i+1]
	return color.RGBA{
		uint8(a[0] + f*(b[0]-a[0])),
		uint8(a[1] + f*(b[1]-a[1])),
		uint8(a[2] + f*(b[2]-a[2])),
		255,
	}
}

// pixelReader returns a fast 8-bit RGB accessor for the image types decoders produce, and the generic
// (interface call per pixel) one otherwise; a 900x900 image is 810,000 reads per thumbnail.
func pixelReader(img image.Image) func(x, y int) (r, g, b uint8) {
	switch m := img.(type) {
	case *image.RGBA:
		return func(x, y int) (uint8, uint8, uint8) {
			i := m.PixOffset(x, y)
			return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
		}
	case *image.NRGBA:
		if m.Opaque() {
			return func(x, y int) (uint8, uint8, uint8) {
				i := m.PixOffset(x, y)
				return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
			}
		}
	case *image.Gray:
		return func(x, y int) (uint8, uint8, uint8) {
			v := m.Pix[m.PixOffset(x, y)]
			return v, v, v
		}
	}
	return func(x, y int) (uint8, uint8, uint8) {
		r, g, b, _ := img.At(x, y).RGBA()
		return uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)
	}
}
