//go:build !js

// Package imageio decodes the image and mask files of a dataset (PNG, JPEG, BMP, TIFF) with bounds
// checked before any pixel buffer is allocated, and turns masks into binary defect masks.
//
// # Mask rule
//
// Masks come from many tools, each with its own encoding, and a rule that reads one of them as empty
// silently turns defects into "good" pixels. DecodeMask (or MaskOf, given the decoded image and its
// format) reads every encoding below; Mask.Encoding says which one a file used.
//
//   - Lossless grey, 8 or 16 bit (PNG, BMP, TIFF): every non-zero value is a defect. That covers 0/255,
//     0/1, class ids 1..N or 253..255, 16-bit 0/255 and 0/65535.
//   - 8-bit 0/255 with soft edges (more than two levels, >= 70 % of the non-zero pixels in 1..31 or
//     224..255, bright pixels at least as many as dark: anti-aliased edges, or a lossy mask saved as PNG
//     like the Magnetic-Tile set's): grey >= 128, as for JPEG. The faint values are blur and noise, and
//     reading them as defect would add scattered pixels far from any defect.
//   - Palette (indexed) images: a pixel whose palette index is not 0 is a defect, whatever its colour
//     (label tools write index 0 = background, index 1 = a dark red that is darker than grey 128).
//   - RGB and RGBA colour masks: a pixel is a defect when it is not black and, with alpha, not fully
//     transparent (a black or a transparent background).
//   - JPEG: a pixel is a defect when its brightest channel is >= 128 (MaskThreshold; for a grey JPEG that
//     is its grey value). Compression leaves small non-zero values around edges that must not count.
//
// A mask whose values fit no known encoding is still read with the rule of its format, and Mask.Warnings
// says why it looks wrong. Lossless masks (grey levels, palette indices, colours: the non-background
// values) fit when they hold
//
//   - one value ({0, v}: 0/255, 0/1, 0/65535, ...), or
//   - up to FewClassIDs (8) distinct values (class ids, 253..255), or
//   - any number of values of which one holds more than half of the defect pixels (0/255 with a
//     minority of anti-aliased edge values), or
//   - up to MaxClassIDs (32) distinct values.
//
// More than 32 values with none of them a majority is how a photo or a heatmap looks, and warns ("mask
// has 173 distinct grey levels; ..."). A JPEG mask warns when more than a quarter of its pixels are
// mid-grey (32..223): compression noise stays near black and white. Every mask warns when all of its
// pixels read as defect (a white or coloured background). A palette mask also warns when a used index
// other than 0 is black while index 0 is not: a palette out of order reads the background as defect.
//
// A mask file that decodes to a different size than its image is an error, never resized silently.
//
// # Orientation
//
// Images are used in their STORED orientation everywhere: masks, anomaly maps, thumbnails, metrics and
// the pixels the browser shows. That is how the MVTec AD evaluation code, PIL's Image.open and the
// PyTorch loaders read them, and Go's decoders ignore EXIF too. A JPEG (or a PNG with an eXIf chunk)
// whose EXIF Orientation is not 1 would be rotated by the browser, so the server sends it through
// ResetOrientation, which rewrites that tag to 1 in the bytes it sends: the file stays byte for byte the
// same otherwise (no re-encoding, no loss, same size); a file whose metadata cannot be parsed goes out as
// a PNG of its decoded pixels instead. The style sheet sets image-orientation: none on the editor's and
// the grid's images as a second guard. Orientation reads the tag.
package imageio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"path"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// MaxPixels bounds the pixel count of a decoded image (a 16k x 16k image); a header that claims more is
// refused before decoding. Smaller images are refused too when their file cannot hold the pixels they
// declare (see "Memory bounds" in limits.go), so a tiny hostile file cannot make the server allocate
// gigabytes.
const MaxPixels = 16384 * 16384

// MaskThreshold is the level from which a pixel of a JPEG mask counts as defect (lossless masks count
// every non-zero value).
const MaskThreshold = 128

// ErrUnsupported is wrapped when a file is not an image of a supported format.
var ErrUnsupported = errors.New("unsupported or malformed image")

// Extensions lists the file extensions treated as images (lower case).
var Extensions = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".bmp": true, ".tif": true, ".tiff": true}

// IsImageName reports whether name has an image extension.
func IsImageName(name string) bool {
	return Extensions[strings.ToLower(path.Ext(name))]
}

// Decode reads one image. Before any pixel buffer exists it checks the header against the file (see
// "Memory bounds" in limits.go: a file that cannot hold the pixels it declares is refused with
// ErrTooLarge) and reserves what decoding costs from DecodeBudget, waiting while other decodes hold too
// much of it; the reservation ends when Decode returns. r is best an *os.File, a bytes.Reader or an
// io.SectionReader, whose size is known without reading; any other reader is read into memory first.
func Decode(r io.Reader) (image.Image, string, error) {
	img, format, release, err := DecodeHeld(r)
	if release != nil {
		release()
	}
	return img, format, err
}

// DecodeHeld is Decode that keeps the image's reservation in the decode budget until the caller calls
// release, for callers that use the image for a short while and then drop it (thumbnails): the budget
// then bounds those images too. release is nil when err is not.
func DecodeHeld(r io.Reader) (img image.Image, format string, release func(), err error) {
	return DecodeHeldContext(context.Background(), r)
}

// DecodeHeldContext is DecodeHeld that gives up while it waits for its share of the decode budget when
// ctx ends (a browser that left the page no longer wants the thumbnail), and does not start decoding
// after that.
func DecodeHeldContext(ctx context.Context, r io.Reader) (img image.Image, format string, release func(), err error) {
	src, err := sized(r)
	if err != nil {
		return nil, "", nil, err
	}
	p, err := inspect(src)
	if err != nil {
		return nil, p.format, nil, err
	}
	release, err = DecodeBudget().Acquire(ctx, p.cost)
	if err != nil {
		return nil, p.format, nil, fmt.Errorf("%v: %w", p, err)
	}
	if err := ctx.Err(); err != nil {
		release()
		return nil, p.format, nil, err
	}
	img, err = decodeOf(p.format, src)
	if err != nil {
		release()
		return nil, p.format, nil, fmt.Errorf("%w: decode %s: %v", ErrUnsupported, p.format, err)
	}
	return img, p.format, release, nil
}

// DecodeConfig reads only the header: format and size. When r's size is known (see Decode) it also
// refuses a file that cannot hold the pixels it declares, as Decode would.
func DecodeConfig(r io.Reader) (image.Config, string, error) {
	src, ok := sizedNoRead(r)
	if !ok {
		br := bufio.NewReader(r)
		head, _ := br.Peek(16)
		format := sniff(head)
		if format == "" {
			return image.Config{}, "", fmt.Errorf("%w: not a PNG, JPEG, BMP or TIFF file", ErrUnsupported)
		}
		cfg, err := decodeConfigOf(format, br)
		return cfg, format, err
	}
	p, err := inspect(src)
	if err != nil {
		return image.Config{}, p.format, err
	}
	if p.format == "tiff" {
		return p.cfg, p.format, nil // inspect ran the TIFF reader's DecodeConfig
	}
	cfg, err := decodeConfigOf(p.format, src.reader())
	return cfg, p.format, err
}

// decodeConfigOf runs the header reader of format.
func decodeConfigOf(format string, in io.Reader) (image.Config, error) {
	var cfg image.Config
	var err error
	switch format {
	case "png":
		cfg, err = png.DecodeConfig(in)
	case "jpeg":
		cfg, err = jpeg.DecodeConfig(in)
	case "bmp":
		cfg, err = bmp.DecodeConfig(in)
	case "tiff":
		cfg, err = tiff.DecodeConfig(in)
	default:
		err = errors.New("unknown format")
	}
	if err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return cfg, nil
}

// decodeOf runs the decoder of format on src. TIFF reads at random offsets (an io.ReaderAt spares it a
// copy of the file); the others read in order, through a buffer.
func decodeOf(format string, src sizedSource) (image.Image, error) {
	switch format {
	case "png":
		return png.Decode(bufio.NewReaderSize(src.reader(), 32<<10))
	case "jpeg":
		return jpeg.Decode(bufio.NewReaderSize(src.reader(), 32<<10))
	case "bmp":
		return bmp.Decode(bufio.NewReaderSize(src.reader(), 32<<10))
	case "tiff":
		return tiff.Decode(src.reader())
	}
	return nil, errors.New("unknown format")
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
