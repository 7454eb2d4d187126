//go:build !js

package imageio

// # Memory bounds
//
// A decoder allocates the pixel buffer its header declares before it reads a single pixel, so a 54-byte
// BMP that declares 16384x16384 pixels costs a gigabyte before it fails on missing data. Decode therefore
// reads the header first (inspect) and refuses, before any pixel buffer exists:
//
//   - a file that cannot hold the pixels it declares (ErrTooLarge). Uncompressed data must be in the
//     file: a BMP's rows, an uncompressed TIFF's samples. Compressed data cannot expand beyond what its
//     method allows: deflate (PNG, TIFF deflate) at most 1032 bytes per byte (a 258-byte match coded in
//     two bits), TIFF LZW 2560 (a 12-bit code for a string of at most ~3840 bytes), PackBits 64 (two
//     bytes for a run of 128), and a JPEG codes every 8x8 block of every component in at least one bit.
//   - an image whose decoding would allocate more than MaxExpansion times the file's size, plus
//     ExpansionSlack (ErrTooLarge): the formats above stay under it for 8-bit images, the cap binds only
//     degenerate files (1-bit images that compress near deflate's limit, CCITT fax strips that code a
//     row in one bit).
//   - an image whose decoding needs more than the whole decode budget (ErrOverBudget).
//
// What a decode holds is estimated from the header as an upper bound (cost): the image buffer of the
// type the decoder returns, a second copy for interlaced PNGs, the coefficient arrays of progressive
// JPEGs, the colour conversion of RGB and CMYK JPEGs (assumed for a 3-component JPEG without a JFIF
// segment, since an Adobe segment after the first scan can decide it), a TIFF's strip buffer and offset
// tables, and a fixed allowance for tables and readers. What it allocates and drops on the way (a zlib
// reader per TIFF strip, deflate's Huffman tables) is estimated separately (garbage): it is never live
// at once, so it is not reserved. FuzzDecode and TestDecode_GoTestdata check both estimates against what
// decoding really allocates.
//
// # Decode budget
//
// All decodes of the process share one ByteBudget (DecodeBudget): a decode reserves its cost before it
// allocates and waits, first come first served, while the reservations of other decodes leave too little.
// Decode returns the reservation when decoding ends (the image then belongs to the caller); DecodeHeld
// keeps it until the caller calls release, for callers that hold the image briefly and want that time
// counted too (thumbnails). The budget is DefaultDecodeBudget unless RDRE_DECODE_BUDGET (bytes, or a number
// with KiB, MiB or GiB) or SetDecodeBudget says otherwise.

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Expansion limits (see the package's "Memory bounds").
const (
	// MaxExpansion bounds the bytes a decode may allocate per byte of the file (beyond ExpansionSlack).
	MaxExpansion = 8192
	// ExpansionSlack is what any image that passes the other checks may cost regardless of its file's
	// size: a blank 1-bit 4096x4096 mask is a few kilobytes and decodes to 16 MiB.
	ExpansionSlack = 16 << 20

	deflateRatio  = 1032 // bytes of output per byte of deflate input, at most
	lzwRatio      = 2560 // TIFF LZW: 12-bit codes of strings up to ~3840 bytes
	packBitsRatio = 64   // PackBits: 2 bytes expand to 128
	// decoderOverhead covers a decoder's fixed allocations (zlib window and tables, Huffman tables,
	// read buffers).
	decoderOverhead = 192 << 10
	// deflateGarbage bounds the Huffman tables the deflate reader allocates and drops, per byte of input:
	// a dynamic block of some 30 bytes can make it build up to ~85 KiB of overflow tables for codes
	// longer than 9 bits, dropped at the next block (real streams cost far less: ~8% of their size).
	deflateGarbage = 4096
	// maxStreamBytes bounds a file read from a plain io.Reader (one without a size): it is buffered to
	// learn its size.
	maxStreamBytes = 1 << 30
)

// ErrTooLarge is wrapped (together with ErrUnsupported) when a file declares more pixels than it can hold,
// or more than MaxExpansion times its size.
var ErrTooLarge = errors.New("image declares more pixels than its file can hold")

// ErrOverBudget is wrapped when one image needs more memory to decode than the whole decode budget.
var ErrOverBudget = errors.New("image needs more memory to decode than the decode budget")

// plan is what inspect learned from a header: the format, the config, what decoding costs and the fewest
// bytes a file needs to hold the declared pixels.
type plan struct {
	format string
	cfg    image.Config
	cost   int64 // bytes the decoder holds at once, an upper bound: what Decode reserves
	// garbage is what the decoder allocates and drops while it runs, on top of cost: a zlib or LZW reader
	// per TIFF strip, deflate's Huffman tables per block. It is never live all at once, so it is not
	// reserved; FuzzDecode counts it.
	garbage int64
	need    int64 // bytes the file must have at least
	why     string
}

func (p plan) String() string {
	return fmt.Sprintf("%s image of %dx%d pixels", p.format, p.cfg.Width, p.cfg.Height)
}

// sniff names the format from the first bytes; only the four formats of this package are decoded, even if
// another package registered more with package image.
func sniff(head []byte) string {
	switch {
	case len(head) >= 8 && string(head[:8]) == "\x89PNG\r\n\x1a\n":
		return "png"
	case len(head) >= 2 && head[0] == 0xff && head[1] == 0xd8:
		return "jpeg"
	case len(head) >= 2 && string(head[:2]) == "BM":
		return "bmp"
	case len(head) >= 4 && (string(head[:4]) == "II*\x00" || string(head[:4]) == "MM\x00*"):
		return "tiff"
	}
	return ""
}

// sizedSource is the input of one decode: random access and a size.
type sizedSource struct {
	ra   io.ReaderAt
	size int64
}

func (s sizedSource) reader() *io.SectionReader { return io.NewSectionReader(s.ra, 0, s.size) }

// sized finds r's size (see sizedNoRead); any other reader is read into memory, up to maxStreamBytes.
func sized(r io.Reader) (sizedSource, error) {
	if src, ok := sizedNoRead(r); ok {
		return src, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxStreamBytes+1))
	if err != nil {
		return sizedSource{}, fmt.Errorf("%w: read: %v", ErrUnsupported, err)
	}
	if len(b) > maxStreamBytes {
		return sizedSource{}, fmt.Errorf("%w: %w: stream longer than %d bytes", ErrUnsupported, ErrTooLarge, maxStreamBytes)
	}
	return sizedSource{bytes.NewReader(b), int64(len(b))}, nil
}

// sizedNoRead finds r's size without reading it: a bytes.Reader, strings.Reader or io.SectionReader
// (Size), or a regular *os.File (Stat), each from its current offset.
func sizedNoRead(r io.Reader) (sizedSource, bool) {
	type sizer interface {
		io.ReaderAt
		io.Seeker
		Size() int64
	}
	switch v := r.(type) {
	case *os.File:
		if st, err := v.Stat(); err == nil && st.Mode().IsRegular() {
			if off, err := v.Seek(0, io.SeekCurrent); err == nil && off <= st.Size() {
				return sizedSource{io.NewSectionReader(v, off, st.Size()-off), st.Size() - off}, true
			}
		}
	case sizer:
		// Size is the whole length; Read continues from the current offset, ReadAt counts from the start.
		if off, err := v.Seek(0, io.SeekCurrent); err == nil && off <= v.Size() {
			return sizedSource{io.NewSectionReader(v, off, v.Size()-off), v.Size() - off}, true
		}
	}
	return sizedSource{}, false
}

// inspect reads the header of the file in src and checks that the file can hold what it declares.
func inspect(src sizedSource) (plan, error) {
	var head [16]byte
	n, _ := src.ra.ReadAt(head[:], 0)
	p := plan{format: sniff(head[:n])}
	var err error
	switch p.format {
	case "png":
		err = inspectPNG(src, &p)
	case "jpeg":
		err = inspectJPEG(src, &p)
	case "bmp":
		err = inspectBMP(src, &p)
	case "tiff":
		err = inspectTIFF(src, &p)
	default:
		return p, fmt.Errorf("%w: not a PNG, JPEG, BMP or TIFF file", ErrUnsupported)
	}
	if err != nil {
		return p, fmt.Errorf("%w: %s: %w", ErrUnsupported, p.format, err)
	}
	w, h := p.cfg.Width, p.cfg.Height
	if w <= 0 || h <= 0 || int64(w)*int64(h) > MaxPixels {
		return p, fmt.Errorf("%w: %s image of %dx%d pixels is outside 1..%d pixels", ErrUnsupported, p.format, w, h, MaxPixels)
	}
	if p.need > src.size {
		return p, fmt.Errorf("%w: %w: %v needs at least %d bytes (%s) but the file has %d", ErrUnsupported, ErrTooLarge, p, p.need, p.why, src.size)
	}
	if p.cost > MaxExpansion*src.size+ExpansionSlack {
		return p, fmt.Errorf("%w: %w: %v decodes to %d MiB, more than %d times its file of %d bytes", ErrUnsupported, ErrTooLarge, p, p.cost>>20, MaxExpansion, src.size)
	}
	return p, nil
}

// bytesPerPixel is the size of one pixel of the image type a decoder returns for model.
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	case color.YCbCrModel:
		return 3
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// ---- PNG ----

func inspectPNG(src sizedSource, p *plan) error {
	var hdr [33]byte // signature, IHDR length and type, 13 bytes of IHDR, CRC
	if _, err := src.ra.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("short header: %v", err)
	}
	if binary.BigEndian.Uint32(hdr[8:12]) != 13 || string(hdr[12:16]) != "IHDR" {
		return errors.New("first chunk is not IHDR")
	}
	w, h := int64(binary.BigEndian.Uint32(hdr[16:20])), int64(binary.BigEndian.Uint32(hdr[20:24]))
	depth, ct, interlace := int64(hdr[24]), hdr[25], hdr[28]
	if w <= 0 || h <= 0 || w > math.MaxInt32 || h > math.MaxInt32 || w*h > MaxPixels {
		p.cfg = image.Config{Width: int(min(w, math.MaxInt32)), Height: int(min(h, math.MaxInt32))}
		return nil // the size check in inspect says what is wrong
	}
	// Look for tRNS before the first IDAT: it turns grey and RGB into NRGBA (or NRGBA64) images.
	trns := false
	off := int64(33)
	for i := 0; ; i++ {
		var ch [8]byte
		if _, err := src.ra.ReadAt(ch[:], off); err != nil {
			break
		}
		typ := string(ch[4:8])
		if typ == "IDAT" {
			break
		}
		if typ == "tRNS" || i > 1<<12 {
			trns = true
			break
		}
		off += 12 + int64(binary.BigEndian.Uint32(ch[:4]))
	}
	var samples, px int64 // samples per pixel in the file; bytes per pixel of the decoded image
	switch ct {
	case 0: // grey
		samples, px = 1, 1
		if depth == 16 {
			px = 2
		}
		if trns {
			px = 4 * (1 + depth/16)
		}
	case 2: // RGB
		samples, px = 3, 4*(1+depth/16)
	case 3: // palette
		samples, px = 1, 1
	case 4: // grey + alpha
		samples, px = 2, 4*(1+depth/16)
	case 6: // RGBA
		samples, px = 4, 4*(1+depth/16)
	default:
		return fmt.Errorf("colour type %d", ct)
	}
	if depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16 {
		return fmt.Errorf("bit depth %d", depth)
	}
	p.cfg = image.Config{Width: int(w), Height: int(h), ColorModel: color.RGBAModel}
	rowBytes := ceilDiv(w*samples*depth, 8)
	img := px * w * h
	if interlace == 1 {
		img *= 2 // the full image and the pass images
	}
	p.cost = img + 2*(rowBytes+1) + decoderOverhead
	p.garbage = deflateGarbage * src.size
	p.need = ceilDiv(h*rowBytes, deflateRatio)
	p.why = fmt.Sprintf("%d bytes of pixel data, at most %d times its deflate stream", h*rowBytes, deflateRatio)
	return nil
}

// ---- JPEG ----

func inspectJPEG(src sizedSource, p *plan) error {
	br := bufio.NewReaderSize(src.reader(), 4096)
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil {
		return err
	}
	var (
		jfif, adobe bool
		nComp       int
		progressive bool
		w, h        int64
		hs, vs      [4]int64
		ids         [4]byte
	)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("no SOS marker: %v", err)
		}
		if c != 0xff {
			continue // libjpeg and Go skip extraneous bytes between segments
		}
		marker, err := br.ReadByte()
		for err == nil && marker == 0xff {
			marker, err = br.ReadByte()
		}
		if err != nil {
			return fmt.Errorf("no SOS marker: %v", err)
		}
		if marker == 0 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0x01 {
			continue
		}
		if marker == 0xd9 {
			return errors.New("EOI before SOS")
		}
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		if n < 0 {
			return errors.New("short segment length")
		}
		var seg []byte
		switch marker {
		case 0xc0, 0xc1, 0xc2, 0xe0, 0xee:
			seg = make([]byte, n)
			if _, err := io.ReadFull(br, seg); err != nil {
				return err
			}
		case 0xda:
			if nComp == 0 {
				return errors.New("SOS before SOF")
			}
		default:
			if _, err := br.Discard(n); err != nil {
				return err
			}
			continue
		}
		switch marker {
		case 0xe0:
			jfif = jfif || (len(seg) >= 5 && string(seg[:5]) == "JFIF\x00")
			continue
		case 0xee:
			adobe = adobe || (len(seg) >= 5 && string(seg[:5]) == "Adobe")
			continue
		case 0xc0, 0xc1, 0xc2:
			if nComp != 0 {
				return errors.New("multiple SOF markers")
			}
			if len(seg) < 6 {
				return errors.New("short SOF")
			}
			progressive = marker == 0xc2
			h, w = int64(binary.BigEndian.Uint16(seg[1:3])), int64(binary.BigEndian.Uint16(seg[3:5]))
			nComp = int(seg[5])
			if nComp != 1 && nComp != 3 && nComp != 4 {
				return fmt.Errorf("%d components", nComp)
			}
			if len(seg) < 6+3*nComp {
				return errors.New("short SOF")
			}
			for i := 0; i < nComp; i++ {
				ids[i] = seg[6+3*i]
				hs[i], vs[i] = int64(seg[7+3*i]>>4), int64(seg[7+3*i]&15)
				if hs[i] < 1 || hs[i] > 4 || vs[i] < 1 || vs[i] > 4 {
					return errors.New("bad sampling factors")
				}
			}
			continue
		}
		break // SOS
	}
	p.cfg = image.Config{Width: int(w), Height: int(h), ColorModel: color.YCbCrModel}
	if w <= 0 || h <= 0 || w*h > MaxPixels {
		return nil
	}
	if nComp == 1 {
		hs[0], vs[0] = 1, 1
	}
	// Go's decoder sizes its planes in MCUs of the first component.
	mxx, myy := ceilDiv(w, 8*hs[0]), ceilDiv(h, 8*vs[0])
	yw, yh := 8*hs[0]*mxx, 8*vs[0]*myy
	var cost, blocks int64
	hmax, vmax := int64(1), int64(1)
	for i := 0; i < nComp; i++ {
		hmax, vmax = max(hmax, hs[i]), max(vmax, vs[i])
	}
	for i := 0; i < nComp; i++ {
		// Every 8x8 block of every component is coded in at least one bit.
		blocks += ceilDiv(ceilDiv(w*hs[i], hmax), 8) * ceilDiv(ceilDiv(h*vs[i], vmax), 8)
		if progressive {
			cost += mxx * myy * hs[i] * vs[i] * 64 * 4
		}
	}
	cost += yw * yh // the grey or Y plane
	if nComp >= 3 {
		hr, vr := max(1, hs[0]/hs[1]), max(1, vs[0]/vs[1])
		cost += 2 * ceilDiv(yw, hr) * ceilDiv(yh, vr)
		// RGB or CMYK output is converted into a new 4-byte-per-pixel image. Whether a 3-component file is
		// RGB can be decided by an Adobe segment after the first scan, so without JFIF assume it is.
		if nComp == 4 || !jfif || adobe || string(ids[:3]) == "RGB" {
			cost += 4 * w * h
		}
	}
	if nComp == 4 {
		cost += 8 * hs[3] * mxx * 8 * vs[3] * myy // the K plane
	}
	p.cost = cost + decoderOverhead
	p.need = ceilDiv(blocks, 8)
	p.why = fmt.Sprintf("%d blocks of 8x8 samples, each coded in at least one bit", blocks)
	return nil
}

// ---- BMP ----

func inspectBMP(src sizedSource, p *plan) error {
	var b [54]byte
	if _, err := src.ra.ReadAt(b[:], 0); err != nil {
		return fmt.Errorf("short header: %v", err)
	}
	offset := int64(binary.LittleEndian.Uint32(b[10:14]))
	w := int64(int32(binary.LittleEndian.Uint32(b[18:22])))
	h := int64(int32(binary.LittleEndian.Uint32(b[22:26])))
	if h < 0 {
		h = -h
	}
	bpp := int64(binary.LittleEndian.Uint16(b[28:30]))
	p.cfg = image.Config{Width: int(min(w, math.MaxInt32)), Height: int(min(h, math.MaxInt32)), ColorModel: color.RGBAModel}
	if w <= 0 || h <= 0 || w*h > MaxPixels {
		return nil
	}
	var row, px int64
	switch bpp {
	case 1, 2, 4, 8:
		row, px = (ceilDiv(w, 8/bpp)+3)&^3, 1
	case 24:
		row, px = (3*w+3)&^3, 4
	case 32:
		row, px = 4*w, 4
	default:
		return fmt.Errorf("%d bits per pixel", bpp)
	}
	// golang.org/x/image/bmp reads only uncompressed rows (BI_RGB, or BI_BITFIELDS in the standard
	// order): every row is in the file.
	p.cost = px*w*h + row + decoderOverhead
	p.need = offset + row*h
	p.why = fmt.Sprintf("%d bytes of uncompressed rows from offset %d", row*h, offset)
	return nil
}

// ---- TIFF ----

// TIFF tags and values read by inspectTIFF.
const (
	tWidth, tHeight, tBits, tCompression, tPhotometric = 256, 257, 258, 259, 262
	tStripOffsets, tRowsPerStrip, tStripCounts         = 273, 278, 279
	tTileWidth, tTileHeight, tTileOffsets, tTileCounts = 322, 323, 324, 325
	tColorMap, tExtraSamples                           = 320, 338
)

type ifdEntry struct {
	typ   uint16
	count uint32
	value [4]byte // inline value or offset
}

func inspectTIFF(src sizedSource, p *plan) error {
	var hdr [8]byte
	if _, err := src.ra.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("short header: %v", err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if hdr[0] == 'M' {
		bo = binary.BigEndian
	}
	ifd := int64(bo.Uint32(hdr[4:8]))
	var cnt [2]byte
	if _, err := src.ra.ReadAt(cnt[:], ifd); err != nil {
		return fmt.Errorf("IFD at %d outside a file of %d bytes", ifd, src.size)
	}
	nEntries := int64(bo.Uint16(cnt[:]))
	if ifd+2+12*nEntries > src.size {
		return fmt.Errorf("IFD of %d entries at %d past the end of a file of %d bytes", nEntries, ifd, src.size)
	}
	raw := make([]byte, 12*nEntries)
	if _, err := src.ra.ReadAt(raw, ifd+2); err != nil {
		return err
	}
	typeLen := [...]int64{0, 1, 1, 2, 4, 8}
	entries := map[uint16]ifdEntry{}
	for i := int64(0); i < nEntries; i++ {
		e := raw[12*i : 12*i+12]
		tag := bo.Uint16(e[0:2])
		ent := ifdEntry{typ: bo.Uint16(e[2:4]), count: bo.Uint32(e[4:8])}
		copy(ent.value[:], e[8:12])
		switch tag {
		case tWidth, tHeight, tBits, tCompression, tPhotometric, tStripOffsets, tRowsPerStrip, tStripCounts,
			tTileWidth, tTileHeight, tTileOffsets, tTileCounts, tColorMap, tExtraSamples:
		default:
			continue // the decoder does not read it
		}
		if ent.typ == 0 || int(ent.typ) >= len(typeLen) {
			return fmt.Errorf("tag %d of type %d", tag, ent.typ)
		}
		if n := typeLen[ent.typ] * int64(ent.count); n > 4 {
			if off := int64(bo.Uint32(ent.value[:])); off+n > src.size {
				return fmt.Errorf("tag %d: %d bytes at %d past the end of a file of %d bytes", tag, n, off, src.size)
			}
		}
		entries[tag] = ent
	}
	arr := func(tag uint16) (*tiffArray, error) { return newTIFFArray(src, bo, tag, entries) }
	first := func(tag uint16) (uint64, error) {
		a, err := arr(tag)
		if err != nil || a.n == 0 {
			return 0, err
		}
		return a.next()
	}
	w, err := first(tWidth)
	if err != nil {
		return err
	}
	h, err := first(tHeight)
	if err != nil {
		return err
	}
	p.cfg = image.Config{Width: int(min(w, math.MaxInt32)), Height: int(min(h, math.MaxInt32))}
	if w == 0 || h == 0 || w*h > MaxPixels {
		return nil
	}
	// The decoder itself tells the colour model (and refuses what it does not support) without reading
	// pixels; its reads are now known to stay inside the file.
	cfg, err := decodeConfigOf("tiff", src.reader())
	if err != nil {
		return err
	}
	p.cfg = cfg
	var bits, samples int64
	ba, err := arr(tBits)
	if err != nil {
		return err
	}
	for ; samples < min(ba.n, 16); samples++ {
		v, err := ba.next()
		if err != nil {
			return err
		}
		bits += int64(v)
	}
	if samples == 0 {
		bits, samples = 1, 1
	}
	comp, err := first(tCompression)
	if err != nil {
		return err
	}
	W, H := int64(w), int64(h)
	blockW, blockH := W, H
	offTag, cntTag := uint16(tStripOffsets), uint16(tStripCounts)
	if tw, _ := first(tTileWidth); tw != 0 {
		th, _ := first(tTileHeight)
		if tw < 8 || th < 8 || tw > 1<<16 || th > 1<<16 {
			return fmt.Errorf("tile size %dx%d", tw, th)
		}
		blockW, blockH = int64(tw), int64(th)
		offTag, cntTag = tTileOffsets, tTileCounts
	} else if rps, _ := first(tRowsPerStrip); rps > 0 && rps < h {
		blockH = int64(rps)
	}
	blocks := ceilDiv(W, blockW) * ceilDiv(H, blockH)
	// Every strip or tile must lie inside the file: the decoder allocates a block's declared byte count
	// before it reads it. Both arrays are streamed, so a header declaring millions of strips costs no memory.
	offs, err := arr(offTag)
	if err != nil {
		return err
	}
	cnts, err := arr(cntTag)
	if err != nil {
		return err
	}
	if offs.n < blocks || cnts.n < blocks {
		return fmt.Errorf("%d strip or tile offsets and %d byte counts for %d blocks", offs.n, cnts.n, blocks)
	}
	var maxCount, sumCount int64
	for i := int64(0); i < blocks; i++ {
		o, err := offs.next()
		if err != nil {
			return err
		}
		c, err := cnts.next()
		if err != nil {
			return err
		}
		if o+c > uint64(src.size) {
			return fmt.Errorf("%w: strip or tile %d: %d bytes at %d past the end of a file of %d bytes", ErrTooLarge, i, c, o, src.size)
		}
		maxCount, sumCount = max(maxCount, int64(c)), sumCount+int64(c)
	}
	rawBytes := H * ceilDiv(W*bits, 8)
	blockMax := blockW * blockH * 8 // the decoder's bound on one block's data
	// A decompressed block goes into a bytes.Buffer that grows by doubling (up to 4 times the data in
	// all), reused from block to block; an uncompressed block is a new slice each time.
	var ratio, buf, perBlock int64
	switch comp {
	case 0, 1:
		ratio = 1
		buf = maxCount
		if maxCount >= 10<<20 { // read in 10 MiB chunks appended to a growing slice
			buf = 10<<20 + 2*maxCount
		}
		perBlock = 0
	case 5:
		ratio, buf, perBlock = lzwRatio, 4*min(blockMax, lzwRatio*maxCount), 24<<10
	case 8, 32946:
		ratio, buf, perBlock = deflateRatio, 4*min(blockMax, deflateRatio*maxCount), 64<<10
		p.garbage = deflateGarbage * src.size
	case 32773:
		ratio, buf, perBlock = packBitsRatio, 4*min(blockMax, packBitsRatio*maxCount), 2<<10
	case 3, 4: // CCITT fax: MaxExpansion is the bound
		ratio, buf, perBlock = MaxExpansion, 4*blockMax, 2*blockW+8<<10
	default:
		return fmt.Errorf("compression %d not supported", comp)
	}
	if ratio == 1 {
		p.garbage = sumCount // each block's slice
	}
	p.garbage += perBlock * blocks
	p.cost = bytesPerPixel(cfg.ColorModel)*W*H + buf + 24*blocks + decoderOverhead
	p.need = ceilDiv(rawBytes, ratio)
	if ratio == 1 {
		p.why = fmt.Sprintf("%d bytes of uncompressed samples", rawBytes)
	} else {
		p.why = fmt.Sprintf("%d bytes of samples, at most %d times their compressed size", rawBytes, ratio)
	}
	return nil
}

// tiffArray streams the values of one IFD entry of type BYTE, SHORT or LONG.
type tiffArray struct {
	n   int64 // values
	l   int64 // bytes per value
	bo  binary.ByteOrder
	r   io.Reader
	buf [4]byte
}

func newTIFFArray(src sizedSource, bo binary.ByteOrder, tag uint16, entries map[uint16]ifdEntry) (*tiffArray, error) {
	ent, ok := entries[tag]
	if !ok {
		return &tiffArray{}, nil
	}
	a := &tiffArray{n: int64(ent.count), bo: bo}
	switch ent.typ {
	case 1:
		a.l = 1
	case 3:
		a.l = 2
	case 4:
		a.l = 4
	default:
		return nil, fmt.Errorf("tag %d of type %d", tag, ent.typ)
	}
	if a.l*a.n <= 4 {
		a.r = strings.NewReader(string(ent.value[:]))
	} else {
		a.r = bufio.NewReaderSize(io.NewSectionReader(src.ra, int64(bo.Uint32(ent.value[:])), a.l*a.n), 4096)
	}
	return a, nil
}

func (a *tiffArray) next() (uint64, error) {
	if _, err := io.ReadFull(a.r, a.buf[:a.l]); err != nil {
		return 0, err
	}
	switch a.l {
	case 1:
		return uint64(a.buf[0]), nil
	case 2:
		return uint64(a.bo.Uint16(a.buf[:2])), nil
	}
	return uint64(a.bo.Uint32(a.buf[:4])), nil
}

// ---- Budget ----

// ByteBudget is a weighted semaphore of bytes: Acquire waits until n bytes are free, first come first
// served (a large request is not overtaken by a stream of small ones).
type ByteBudget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	peak    int64
	waiters list.List // of *budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

// NewByteBudget returns a budget of size bytes.
func NewByteBudget(size int64) *ByteBudget { return &ByteBudget{size: max(size, 1)} }

// Size returns the budget's size in bytes.
func (b *ByteBudget) Size() int64 { return b.size }

// InUse returns the bytes reserved now.
func (b *ByteBudget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Peak returns the most bytes ever reserved at once.
func (b *ByteBudget) Peak() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// Acquire reserves n bytes, waiting until they are free or ctx ends. release returns them (calling it
// more than once is harmless). More than the whole budget fails at once with ErrOverBudget.
func (b *ByteBudget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	n = max(n, 0)
	if n > b.size {
		return nil, fmt.Errorf("%w: %d MiB needed, the budget is %d MiB", ErrOverBudget, ceilDiv(n, 1<<20), b.size>>20)
	}
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.size {
		b.take(n)
		b.mu.Unlock()
		return b.releaser(n), nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	el := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return b.releaser(n), nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.used -= n
		default:
			b.waiters.Remove(el)
		}
		b.grant()
		b.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (b *ByteBudget) take(n int64) {
	b.used += n
	b.peak = max(b.peak, b.used)
}

// grant wakes the waiters at the head of the queue that fit now. Called with mu held.
func (b *ByteBudget) grant() {
	for b.waiters.Len() > 0 {
		el := b.waiters.Front()
		w := el.Value.(*budgetWaiter)
		if b.used+w.n > b.size {
			return
		}
		b.take(w.n)
		b.waiters.Remove(el)
		close(w.ready)
	}
}

func (b *ByteBudget) releaser(n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.used -= n
			b.grant()
			b.mu.Unlock()
		})
	}
}

// DecodeBudgetEnv names the environment variable that sets the decode budget ("1GiB", "512MiB", bytes).
const DecodeBudgetEnv = "RDRE_DECODE_BUDGET"

var decodeBudget atomic.Pointer[ByteBudget]

// DefaultDecodeBudget is the decode budget for a machine with this much memory (0 = unknown): a quarter
// of it, at least 256 MiB and at most 2 GiB (a 16384x16384 RGBA image is 1 GiB).
func DefaultDecodeBudget(memory int64) int64 {
	if memory <= 0 {
		return 1 << 30
	}
	return min(max(memory/4, 256<<20), 2<<30)
}

// DecodeBudget returns the budget every decode of this process reserves its memory from.
func DecodeBudget() *ByteBudget {
	if b := decodeBudget.Load(); b != nil {
		return b
	}
	size := DefaultDecodeBudget(availableMemory())
	if v := os.Getenv(DecodeBudgetEnv); v != "" {
		if n, err := ParseBytes(v); err == nil && n > 0 {
			size = n
		}
	}
	decodeBudget.CompareAndSwap(nil, NewByteBudget(size))
	return decodeBudget.Load()
}

// SetDecodeBudget replaces the decode budget by one of size bytes (<= 0 restores the default). Decodes
// already running return their reservations to the budget they took them from.
func SetDecodeBudget(size int64) {
	if size <= 0 {
		decodeBudget.Store(nil)
		return
	}
	decodeBudget.Store(NewByteBudget(size))
}

// ParseBytes reads a byte count: a number with an optional KiB, MiB, GiB (or K, M, G, KB, MB, GB, all
// powers of 1024) suffix.
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("byte count %q: want a number with an optional KiB, MiB or GiB suffix", s)
	}
	return n * mult, nil
}

// availableMemory is the memory this process may use: the smallest of the machine's memory, its cgroup
// limit and GOMEMLIMIT; 0 when none is known.
func availableMemory() int64 {
	m := systemMemory()
	if lim := debug.SetMemoryLimit(-1); lim > 0 && lim < math.MaxInt64 && (m == 0 || lim < m) {
		m = lim
	}
	return m
}
