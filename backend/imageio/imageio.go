//go:build !js

// Package imageio decodes the image and mask files of a dataset (PNG, JPEG, BMP, TIFF) with bounds
// checked before any pixel buffer is allocated, and turns masks into binary defect masks.
//
// Mask rule: a mask pixel is a defect when its grey value (after converting colour to grey) is >= 128.
// MVTec AD stores 0/255, some datasets anti-alias edges (a few in-between values) or store class ids
// 253..255; thresholding at the midpoint keeps both right. A mask file that decodes to a different size than
// its image is an error, never resized silently.
package imageio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder
	_ "image/png"  // registers the PNG decoder
	"io"
	"path"
	"strings"

	_ "golang.org/x/image/bmp"  // registers the BMP decoder
	_ "golang.org/x/image/tiff" // registers the TIFF decoder
)

// MaxPixels bounds the pixel count of a decoded image (a 16k x 16k image); a header that claims more is
// refused before decoding, so a tiny hostile file cannot make the server allocate gigabytes.
const MaxPixels = 16384 * 16384

// MaskThreshold is the grey level from which a mask pixel counts as defect.
const MaskThreshold = 128

// ErrUnsupported is wrapped when a file is not an image of a supported format.
var ErrUnsupported = errors.New("unsupported or malformed image")

// Extensions lists the file extensions treated as images (lower case).
var Extensions = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".bmp": true, ".tif": true, ".tiff": true}

// IsImageName reports whether name has an image extension.
func IsImageName(name string) bool {
	return Extensions[strings.ToLower(path.Ext(name))]
}

// Decode reads one image, checking its declared size first.
func Decode(r io.Reader) (image.Image, string, error) {
	br := bufio.NewReader(r)
	// DecodeConfig consumes input; keep the bytes it reads so Decode sees the whole file.
	var head bytes.Buffer
	cfg, format, err := image.DecodeConfig(io.TeeReader(br, &head))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, format, fmt.Errorf("%w: %s image of %dx%d pixels is outside 1..%d pixels", ErrUnsupported, format, cfg.Width, cfg.Height, MaxPixels)
	}
	img, format, err := image.Decode(io.MultiReader(&head, br))
	if err != nil {
		return nil, format, fmt.Errorf("%w: decode %s: %v", ErrUnsupported, format, err)
	}
	return img, format, nil
}

// DecodeConfig reads only the header: format and size.
func DecodeConfig(r io.Reader) (image.Config, string, error) {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return cfg, "", fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return cfg, format, nil
}

// BinaryMask converts a decoded mask image into a row-major defect mask (true = defect).
func BinaryMask(img image.Image) (mask []bool, w, h int) {
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	mask = make([]bool, w*h)
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				mask[y*w+x] = v >= MaskThreshold
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				g := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray)
				mask[y*w+x] = g.Y >= MaskThreshold
			}
		}
	}
	return mask, w, h
}

// RGB8 returns the image as packed 8-bit RGB, row-major; grey images are replicated into three channels.
// This is what the model's pre-processing starts from (PIL's convert("RGB") on the Python side).
func RGB8(img image.Image) (pix []uint8, w, h int) {
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	pix = make([]uint8, 3*w*h)
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := m.Pix[y*m.Stride+x]
				i := 3 * (y*w + x)
				pix[i], pix[i+1], pix[i+2] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				s := m.Pix[y*m.Stride+4*x:]
				i := 3 * (y*w + x)
				pix[i], pix[i+1], pix[i+2] = s[0], s[1], s[2]
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				// NRGBA drops alpha the way PIL's convert("RGB") does (no premultiplication).
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				i := 3 * (y*w + x)
				pix[i], pix[i+1], pix[i+2] = c.R, c.G, c.B
			}
		}
	}
	return pix, w, h
}
