//go:build !js

package report

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
)

// opaqueImage hides the concrete type, forcing the generic pixel path.
type opaqueImage struct{ image.Image }

func panelFixture() (*image.RGBA, []float32, []bool) {
	const w, h = 300, 200
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	m := make([]float32, w*h)
	mask := make([]bool, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8((x + 2*y) % 200)
			img.SetRGBA(x, y, color.RGBA{v, v / 2, 255 - v, 255})
			i := y*w + x
			m[i] = float32(x) / w
			mask[i] = x >= 100 && x < 200 && y >= 50 && y < 150
		}
	}
	return img, m, mask
}

func decodePanel(t *testing.T, uri string) image.Image {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(uri, "data:image/jpeg;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestRenderPanel_ImageTypes_SameThumbnail(t *testing.T) {
	img, m, mask := panelFixture()
	nrgba := image.NewNRGBA(img.Bounds())
	copy(nrgba.Pix, img.Pix) // opaque, so premultiplied and straight alpha agree
	var want string
	for name, src := range map[string]image.Image{"rgba": img, "nrgba": nrgba, "generic": opaqueImage{img}} {
		got, err := renderPanel(&GalleryImage{Image: src, Map: m, W: 300, H: 200, Mask: mask}, 0, 1)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("%s: thumbnail differs from the other image types'", name)
		}
	}
	p := decodePanel(t, want)
	// 300x200 scales to 208x138 per panel, two panels and a 4 px gap.
	if b := p.Bounds(); b.Dx() != 2*208+4 || b.Dy() != 138 {
		t.Errorf("panel %v", b)
	}
	// The mask's left edge (x=100 -> 70 in the thumbnail) is outlined in green on both panels; its
	// inside is not.
	green := func(x, y int) bool {
		r, g, b, _ := p.At(x, y).RGBA()
		return g>>8 > 180 && r>>8 < 110 && b>>8 < 190
	}
	if !green(70, 69) || !green(208+4+70, 69) {
		t.Error("no contour at the mask's edge")
	}
	if green(100, 69) {
		t.Error("contour drawn inside the mask")
	}
	// The heatmap runs left (low) to right (high): the right panel's right side is redder.
	lr, _, lb, _ := p.At(208+4+10, 10).RGBA()
	rr, _, rb, _ := p.At(208+4+200, 10).RGBA()
	if !(rr > lr && rb < lb) {
		t.Errorf("heat colours do not follow the map: left %d/%d right %d/%d", lr>>8, lb>>8, rr>>8, rb>>8)
	}
}

func TestRenderPanel_BadInput_Errors(t *testing.T) {
	img, m, mask := panelFixture()
	for name, g := range map[string]*GalleryImage{
		"nil":        nil,
		"no image":   {Map: m, W: 300, H: 200},
		"map size":   {Image: img, Map: m[:10], W: 300, H: 200},
		"image size": {Image: img, Map: m, W: 200, H: 300},
		"mask size":  {Image: img, Map: m, W: 300, H: 200, Mask: mask[:5]},
	} {
		if _, err := renderPanel(g, 0, 1); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
