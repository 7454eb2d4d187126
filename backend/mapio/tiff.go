//go:build !js

package mapio

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"

	"golang.org/x/image/tiff/lzw"
)

// ReadTIFF reads the first image of a TIFF file holding one channel of 32- or 64-bit IEEE floats
// (SampleFormat 3), in strips or tiles, uncompressed, Deflate or LZW compressed, without predictor.
// 32-bit samples are returned in Map.Data, 64-bit ones in Map.Data64 at full precision.
// Refused with an error: BigTIFF, other compressions (PackBits, JPEG, ...), predictors, more than one sample
// per pixel, integer samples. golang.org/x/image/tiff decodes none of the float layouts, hence this reader.
func ReadTIFF(r io.Reader) (Map, error) {
	// Offsets point anywhere in the file, so it is read whole; ReadAll grows with the bytes that exist.
	data, err := io.ReadAll(io.LimitReader(r, MaxPixels*8+1<<20))
	if err != nil {
		return Map{}, fmt.Errorf("%w: read tiff: %v", ErrFormat, err)
	}
	return decodeTIFF(data)
}

const (
	tImageWidth      = 256
	tImageLength     = 257
	tBitsPerSample   = 258
	tCompression     = 259
	tStripOffsets    = 273
	tSamplesPerPixel = 277
	tRowsPerStrip    = 278
	tStripByteCounts = 279
	tPlanarConfig    = 284
	tPredictor       = 317
	tTileWidth       = 322
	tTileLength      = 323
	tTileOffsets     = 324
	tTileByteCounts  = 325
	tSampleFormat    = 339
)

type tiffFile struct {
	data  []byte
	order binary.ByteOrder
}

func terr(format string, a ...any) error {
	return fmt.Errorf("%w: tiff: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// values returns the unsigned integer values of an IFD entry (BYTE, SHORT or LONG).
func (t *tiffFile) values(entry []byte) ([]uint64, error) {
	typ := t.order.Uint16(entry[2:])
	count := uint64(t.order.Uint32(entry[4:]))
	var size uint64
	switch typ {
	case 1:
		size = 1
	case 3:
		size = 2
	case 4:
		size = 4
	default:
		return nil, terr("tag %d has type %d, want an unsigned integer", t.order.Uint16(entry), typ)
	}
	n := count * size
	var raw []byte
	if n <= 4 {
		raw = entry[8 : 8+n]
	} else {
		off := uint64(t.order.Uint32(entry[8:]))
		if off+n > uint64(len(t.data)) {
			return nil, terr("tag %d: %d values past the end of the file", t.order.Uint16(entry), count)
		}
		raw = t.data[off : off+n]
	}
	out := make([]uint64, count)
	for i := range out {
		switch size {
		case 1:
			out[i] = uint64(raw[i])
		case 2:
			out[i] = uint64(t.order.Uint16(raw[2*i:]))
		case 4:
			out[i] = uint64(t.order.Uint32(raw[4*i:]))
		}
	}
	return out, nil
}

func decodeTIFF(data []byte) (Map, error) {
	if len(data) < 8 {
		return Map{}, terr("file of %d bytes is too short", len(data))
	}
	t := &tiffFile{data: data}
	switch string(data[:2]) {
	case "II":
		t.order = binary.LittleEndian
	case "MM":
		t.order = binary.BigEndian
	default:
		return Map{}, terr("bad byte-order mark")
	}
	switch t.order.Uint16(data[2:]) {
	case 42:
	case 43:
		return Map{}, terr("BigTIFF is not supported")
	default:
		return Map{}, terr("bad magic number")
	}
	ifd := uint64(t.order.Uint32(data[4:]))
	if ifd+2 > uint64(len(data)) {
		return Map{}, terr("first IFD at %d is past the end of the file", ifd)
	}
	nent := uint64(t.order.Uint16(data[ifd:]))
	if ifd+2+12*nent > uint64(len(data)) {
		return Map{}, terr("IFD of %d entries runs past the end of the file", nent)
	}
	tags := map[uint16][]uint64{}
	for i := uint64(0); i < nent; i++ {
		e := data[ifd+2+12*i : ifd+2+12*i+12]
		tag := t.order.Uint16(e)
		switch tag {
		case tImageWidth, tImageLength, tBitsPerSample, tCompression, tStripOffsets, tSamplesPerPixel,
			tRowsPerStrip, tStripByteCounts, tPlanarConfig, tPredictor, tTileWidth, tTileLength,
			tTileOffsets, tTileByteCounts, tSampleFormat:
			v, err := t.values(e)
			if err != nil {
				return Map{}, err
			}
			if len(v) == 0 {
				return Map{}, terr("tag %d has no value", tag)
			}
			tags[tag] = v
		}
	}
	one := func(tag uint16, def uint64) uint64 {
		if v, ok := tags[tag]; ok {
			return v[0]
		}
		return def
	}
	W, H := one(tImageWidth, 0), one(tImageLength, 0)
	if W == 0 || H == 0 || W > MaxPixels || H > MaxPixels || W*H > MaxPixels {
		return Map{}, terr("size %dx%d is outside 1..%d pixels", W, H, MaxPixels)
	}
	if spp := one(tSamplesPerPixel, 1); spp != 1 {
		return Map{}, terr("%d samples per pixel, want 1", spp)
	}
	bps := one(tBitsPerSample, 1)
	if sf := one(tSampleFormat, 1); sf != 3 || (bps != 32 && bps != 64) {
		return Map{}, terr("sample format %d with %d bits, want IEEE float (3) of 32 or 64 bits", sf, bps)
	}
	if p := one(tPredictor, 1); p != 1 {
		return Map{}, terr("predictor %d is not supported", p)
	}
	if pc := one(tPlanarConfig, 1); pc != 1 && pc != 2 {
		return Map{}, terr("planar configuration %d", pc)
	}
	comp := one(tCompression, 1)
	// The largest output one compressed byte can produce (Deflate ~1032, LZW bounded by its 4096-entry
	// table); a declared size beyond it cannot be in the file, so it is refused before allocating.
	var ratio uint64
	switch comp {
	case 1:
		ratio = 1
	case 8, 32946:
		ratio = 1040
	case 5:
		ratio = 4096
	default:
		return Map{}, terr("compression %d is not supported (want none, Deflate or LZW)", comp)
	}
	bpp := bps / 8

	// Blocks are strips (full width) or tiles.
	var bw, bh uint64
	var offsets, counts []uint64
	if _, tiled := tags[tTileOffsets]; tiled {
		bw, bh = one(tTileWidth, 0), one(tTileLength, 0)
		offsets, counts = tags[tTileOffsets], tags[tTileByteCounts]
	} else {
		bw, bh = W, one(tRowsPerStrip, H)
		if bh > H {
			bh = H
		}
		offsets, counts = tags[tStripOffsets], tags[tStripByteCounts]
	}
	if bw == 0 || bh == 0 || bw > MaxPixels || bh > MaxPixels || bw*bh > MaxPixels {
		return Map{}, terr("block size %dx%d is out of range", bw, bh)
	}
	across, down := (W+bw-1)/bw, (H+bh-1)/bh
	if uint64(len(offsets)) != across*down || len(counts) != len(offsets) {
		return Map{}, terr("%d block offsets and %d byte counts for %d blocks", len(offsets), len(counts), across*down)
	}
	// What the blocks decompress to, and the distinct bytes they are stored in: blocks that share bytes
	// (every offset pointing at one small Deflate stream) must not make those bytes count many times,
	// and tiles far larger than the image must not allocate more than the file can fill.
	var need uint64
	spans := make([][2]uint64, 0, len(offsets))
	for i, off := range offsets {
		if off+counts[i] > uint64(len(data)) {
			return Map{}, terr("block %d (%d bytes at %d) runs past the end of the file", i, counts[i], off)
		}
		n := blockBytes(uint64(i), W, H, bw, bh, across, bpp)
		if counts[i]*ratio < n {
			return Map{}, terr("block %d of %d bytes cannot hold the %d bytes it must decompress to", i, counts[i], n)
		}
		need += n
		spans = append(spans, [2]uint64{off, off + counts[i]})
	}
	if stored := distinctBytes(spans); stored*ratio < need {
		return Map{}, terr("%d distinct stored bytes cannot hold the %d bytes of a %dx%d map in %dx%d blocks", stored, need, W, H, bw, bh)
	}

	var out []float32
	var out64 []float64
	if bpp == 4 {
		out = make([]float32, W*H)
	} else {
		out64 = make([]float64, W*H)
	}
	blk := make([]byte, bw*bh*bpp)
	for i := range offsets {
		bx, by := uint64(i)%across, uint64(i)/across
		rows := min(bh, H-by*bh)
		cols := min(bw, W-bx*bw)
		need := blockBytes(uint64(i), W, H, bw, bh, across, bpp)
		src := data[offsets[i] : offsets[i]+counts[i]]
		var raw []byte
		switch comp {
		case 1:
			if uint64(len(src)) < need {
				return Map{}, terr("block %d has %d bytes, needs %d", i, len(src), need)
			}
			raw = src[:need]
		default:
			var dec io.ReadCloser
			var err error
			if comp == 5 {
				dec = lzw.NewReader(bytes.NewReader(src), lzw.MSB, 8)
			} else if dec, err = zlib.NewReader(bytes.NewReader(src)); err != nil {
				return Map{}, terr("block %d: %v", i, err)
			}
			n, err := io.ReadFull(dec, blk[:need])
			dec.Close()
			if err != nil {
				return Map{}, terr("block %d: decompressed %d of %d bytes: %v", i, n, need, err)
			}
			raw = blk[:need]
		}
		for y := uint64(0); y < rows; y++ {
			for x := uint64(0); x < cols; x++ {
				s := (y*bw + x) * bpp
				d := (by*bh+y)*W + bx*bw + x
				if bpp == 4 {
					out[d] = math.Float32frombits(t.order.Uint32(raw[s:]))
				} else {
					out64[d] = math.Float64frombits(t.order.Uint64(raw[s:]))
				}
			}
		}
	}
	return Map{W: int(W), H: int(H), Data: out, Data64: out64}, nil
}

// blockBytes is the decompressed size of block i: a strip holds only its own rows; a tile is always
// full size.
func blockBytes(i, W, H, bw, bh, across, bpp uint64) uint64 {
	if bw == W {
		return min(bh, H-(i/across)*bh) * bw * bpp
	}
	return bw * bh * bpp
}

// distinctBytes is the number of file bytes that the [start, end) spans cover, each byte once.
func distinctBytes(spans [][2]uint64) uint64 {
	slices.SortFunc(spans, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	var total, end uint64
	for _, s := range spans {
		if s[0] > end {
			end = s[0]
		}
		if s[1] > end {
			total += s[1] - end
			end = s[1]
		}
	}
	return total
}
