//go:build !js

package imageio

import (
	"bytes"
	"errors"
	"image"
	"testing"
)

func TestDecode_Hostile(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":   nil,
		"garbage": []byte("not an image at all"),
		// A PNG header claiming 100000 x 100000 pixels, with no data behind it.
		"huge png": {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		if _, _, err := Decode(bytes.NewReader(b)); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", name, err)
		}
	}
}

func TestRGB8_Gray(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 2, 1))
	g.Pix[0], g.Pix[1] = 10, 200
	pix, _, _ := RGB8(g)
	want := []uint8{10, 10, 10, 200, 200, 200}
	if !bytes.Equal(pix, want) {
		t.Fatalf("got %v want %v", pix, want)
	}
}
