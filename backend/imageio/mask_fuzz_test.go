//go:build !js

package imageio

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

// FuzzDecodeMask: any bytes either fail with an error or give a mask whose pixel count matches its size
// and whose defect count matches its pixels; never a panic.
func FuzzDecodeMask(f *testing.F) {
	g := image.NewGray(image.Rect(0, 0, 4, 3))
	g.Pix[5] = 255
	var buf bytes.Buffer
	png.Encode(&buf, g)
	f.Add(buf.Bytes())
	p := image.NewPaletted(image.Rect(0, 0, 3, 2), color.Palette{color.Black, color.RGBA{128, 0, 0, 255}})
	p.Pix[1] = 1
	buf.Reset()
	png.Encode(&buf, p)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMask(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(m.Pix) != m.W*m.H {
			t.Fatalf("%dx%d mask with %d pixels", m.W, m.H, len(m.Pix))
		}
		n := 0
		for _, v := range m.Pix {
			if v {
				n++
			}
		}
		if n != m.Defects {
			t.Fatalf("Defects %d, counted %d", m.Defects, n)
		}
	})
}
