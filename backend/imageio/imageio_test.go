//go:build !js

package imageio

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
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

func TestBinaryMask_Threshold(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 4, 1))
	copy(g.Pix, []uint8{0, 127, 128, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, g); err != nil {
		t.Fatal(err)
	}
	img, _, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	m, w, h := BinaryMask(img)
	want := []bool{false, false, true, true}
	if w != 4 || h != 1 {
		t.Fatalf("size %dx%d", w, h)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Fatalf("pixel %d: got %v want %v", i, m[i], want[i])
		}
	}
	// The same rule through the generic (colour) path.
	rgba := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	rgba.Set(0, 0, color.NRGBA{200, 200, 200, 255})
	rgba.Set(1, 0, color.NRGBA{20, 20, 20, 255})
	m, _, _ = BinaryMask(rgba)
	if !m[0] || m[1] {
		t.Fatalf("colour mask: got %v", m)
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
