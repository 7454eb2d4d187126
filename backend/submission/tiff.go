package submission

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/image/tiff/lzw"
)

// WriteTIFF16 writes a single-channel float16 TIFF (little-endian, one uncompressed strip, SampleFormat
// IEEE float, 16 bits: what tifffile.imwrite writes for a 2-D np.float16 array) of a w x h map given in
// float32 (data) or float64 (data64). Each value is rounded once to the nearest float16; it returns the
// number of values clamped to the float16 range.
func WriteTIFF16(dst io.Writer, w, h int, data []float32, data64 []float64) (int, error) {
	if w <= 0 || h <= 0 || (data64 == nil && len(data) != w*h) || (data64 != nil && len(data64) != w*h) {
		return 0, fmt.Errorf("tiff: %d values for %dx%d", max(len(data), len(data64)), w, h)
	}
	n := w * h * 2
	if int64(n) > math.MaxUint32-1024 {
		return 0, fmt.Errorf("tiff: %dx%d is too large for one TIFF", w, h)
	}
	type entry struct {
		tag, typ uint16
		val      uint32
	}
	const (
		tShort = 3
		tLong  = 4
	)
	entries := []entry{
		{256, tLong, uint32(w)},
		{257, tLong, uint32(h)},
		{258, tShort, 16}, // BitsPerSample
		{259, tShort, 1},  // Compression: none
		{262, tShort, 1},  // Photometric: BlackIsZero
		{273, tLong, 0},   // StripOffsets, set below
		{277, tShort, 1},  // SamplesPerPixel
		{278, tLong, uint32(h)},
		{279, tLong, uint32(n)}, // StripByteCounts
		{284, tShort, 1},        // PlanarConfiguration: contiguous
		{339, tShort, 3},        // SampleFormat: IEEE float
	}
	ifdSize := 2 + 12*len(entries) + 4
	dataOff := 8 + ifdSize
	entries[5].val = uint32(dataOff)
	buf := make([]byte, dataOff+n)
	copy(buf, "II")
	le := binary.LittleEndian
	le.PutUint16(buf[2:], 42)
	le.PutUint32(buf[4:], 8)
	le.PutUint16(buf[8:], uint16(len(entries)))
	for i, e := range entries {
		o := 10 + 12*i
		le.PutUint16(buf[o:], e.tag)
		le.PutUint16(buf[o+2:], e.typ)
		le.PutUint32(buf[o+4:], 1)
		if e.typ == tShort {
			le.PutUint16(buf[o+8:], uint16(e.val))
		} else {
			le.PutUint32(buf[o+8:], e.val)
		}
	}
	// next IFD offset 0: one image only
	clamped := 0
	for i := range w * h {
		var v float64
		if data64 != nil {
			v = data64[i]
		} else {
			v = float64(data[i])
		}
		hv, c := toHalf(v)
		if c {
			clamped++
		}
		le.PutUint16(buf[dataOff+2*i:], hv)
	}
	_, err := dst.Write(buf)
	return clamped, err
}

// TIFFInfo describes a decoded TIFF.
type TIFFInfo struct {
	W, H            int
	BitsPerSample   int
	SampleFormat    int // 1 unsigned, 2 signed, 3 IEEE float
	SamplesPerPixel int
	Pages           int
}

// Float16 reports a single-channel float16 image of one page.
func (t TIFFInfo) Float16() bool {
	return t.BitsPerSample == 16 && t.SampleFormat == 3 && t.SamplesPerPixel == 1 && t.Pages == 1
}

var errTIFF = errors.New("tiff")

func terr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errTIFF, fmt.Sprintf(format, a...))
}

// ReadTIFF16 decodes a TIFF and, when it is a single-channel float16 image, its values as float32. It
// reads strips or tiles, uncompressed, Deflate or LZW, with predictor none, horizontal or floating-point,
// in either byte order: what tifffile writes. mapio reads float32 and float64 TIFF but not float16, hence
// this reader.
func ReadTIFF16(data []byte) (TIFFInfo, []float32, error) {
	var info TIFFInfo
	if len(data) < 8 {
		return info, nil, terr("file of %d bytes is too short", len(data))
	}
	var order binary.ByteOrder
	switch string(data[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return info, nil, terr("bad byte-order mark")
	}
	if order.Uint16(data[2:]) != 42 {
		return info, nil, terr("not a classic TIFF (magic %d; BigTIFF is not read)", order.Uint16(data[2:]))
	}
	ifd := uint64(order.Uint32(data[4:]))
	tags := map[uint16][]uint64{}
	for page := 0; ifd != 0; page++ {
		if page > 1000 {
			return info, nil, terr("more than 1000 pages")
		}
		if ifd+2 > uint64(len(data)) {
			return info, nil, terr("IFD at %d is past the end of the file", ifd)
		}
		nent := uint64(order.Uint16(data[ifd:]))
		if ifd+2+12*nent+4 > uint64(len(data)) {
			return info, nil, terr("IFD of %d entries runs past the end of the file", nent)
		}
		if page == 0 {
			for i := uint64(0); i < nent; i++ {
				e := data[ifd+2+12*i : ifd+2+12*i+12]
				v, err := values(data, order, e)
				if err != nil {
					return info, nil, err
				}
				tags[order.Uint16(e)] = v
			}
		}
		info.Pages++
		ifd = uint64(order.Uint32(data[ifd+2+12*nent:]))
	}
	one := func(tag uint16, def uint64) uint64 {
		if v, ok := tags[tag]; ok && len(v) > 0 {
			return v[0]
		}
		return def
	}
	W, H := one(256, 0), one(257, 0)
	const maxSide = 1 << 16
	if W == 0 || H == 0 || W > maxSide || H > maxSide || W*H > 1<<30 {
		return info, nil, terr("size %dx%d is out of range", W, H)
	}
	info.W, info.H = int(W), int(H)
	info.BitsPerSample = int(one(258, 1))
	info.SampleFormat = int(one(339, 1))
	info.SamplesPerPixel = int(one(277, 1))
	if !info.Float16() {
		return info, nil, nil
	}
	comp, pred := one(259, 1), one(317, 1)
	if comp != 1 && comp != 5 && comp != 8 && comp != 32946 {
		return info, nil, terr("compression %d is not read (none, LZW and Deflate are)", comp)
	}
	if pred != 1 && pred != 2 && pred != 3 {
		return info, nil, terr("predictor %d", pred)
	}
	var bw, bh uint64
	var offs, counts []uint64
	if _, tiled := tags[324]; tiled {
		bw, bh = one(322, 0), one(323, 0)
		offs, counts = tags[324], tags[325]
	} else {
		bw, bh = W, min(one(278, H), H)
		offs, counts = tags[273], tags[279]
	}
	if bw == 0 || bh == 0 || bw > maxSide || bh > maxSide {
		return info, nil, terr("block size %dx%d", bw, bh)
	}
	across, down := (W+bw-1)/bw, (H+bh-1)/bh
	if uint64(len(offs)) != across*down || len(counts) != len(offs) {
		return info, nil, terr("%d block offsets and %d byte counts for %d blocks", len(offs), len(counts), across*down)
	}
	out := make([]float32, W*H)
	for i := range offs {
		if offs[i]+counts[i] > uint64(len(data)) {
			return info, nil, terr("block %d runs past the end of the file", i)
		}
		bx, by := uint64(i)%across, uint64(i)/across
		rows, cols := min(bh, H-by*bh), min(bw, W-bx*bw)
		need := bw * bh * 2
		if bw == W {
			need = rows * bw * 2
		}
		src := data[offs[i] : offs[i]+counts[i]]
		raw := make([]byte, need)
		switch comp {
		case 1:
			if uint64(len(src)) < need {
				return info, nil, terr("block %d has %d bytes, needs %d", i, len(src), need)
			}
			copy(raw, src)
		default:
			var dec io.ReadCloser
			if comp == 5 {
				dec = lzw.NewReader(bytes.NewReader(src), lzw.MSB, 8)
			} else {
				z, err := zlib.NewReader(bytes.NewReader(src))
				if err != nil {
					return info, nil, terr("block %d: %v", i, err)
				}
				dec = z
			}
			_, err := io.ReadFull(dec, raw)
			dec.Close()
			if err != nil {
				return info, nil, terr("block %d: %v", i, err)
			}
		}
		rowLen := int(bw)
		nrows := int(need / (bw * 2))
		for y := 0; y < nrows; y++ {
			row := raw[y*rowLen*2 : (y+1)*rowLen*2]
			switch pred {
			case 2: // horizontal differencing of the 16-bit samples
				prev := order.Uint16(row)
				for x := 1; x < rowLen; x++ {
					prev += order.Uint16(row[2*x:])
					order.PutUint16(row[2*x:], prev)
				}
			case 3: // floating point: bytes differenced, then stored most significant byte plane first
				for x := 1; x < len(row); x++ {
					row[x] += row[x-1]
				}
				tmp := make([]byte, len(row))
				for x := 0; x < rowLen; x++ {
					hi, lo := row[x], row[rowLen+x]
					if order == binary.LittleEndian {
						tmp[2*x], tmp[2*x+1] = lo, hi
					} else {
						tmp[2*x], tmp[2*x+1] = hi, lo
					}
				}
				copy(row, tmp)
			}
		}
		for y := uint64(0); y < rows; y++ {
			for x := uint64(0); x < cols; x++ {
				s := (y*bw + x) * 2
				out[(by*bh+y)*W+bx*bw+x] = fromHalf(order.Uint16(raw[s:]))
			}
		}
	}
	return info, out, nil
}

// values returns the unsigned integer values of an IFD entry (BYTE, SHORT or LONG); other types give none.
func values(data []byte, order binary.ByteOrder, e []byte) ([]uint64, error) {
	typ := order.Uint16(e[2:])
	count := uint64(order.Uint32(e[4:]))
	var size uint64
	switch typ {
	case 1:
		size = 1
	case 3:
		size = 2
	case 4:
		size = 4
	default:
		return nil, nil
	}
	if count > 1<<24 {
		return nil, terr("tag %d has %d values", order.Uint16(e), count)
	}
	n := count * size
	raw := e[8 : 8+min(n, 4)]
	if n > 4 {
		off := uint64(order.Uint32(e[8:]))
		if off+n > uint64(len(data)) {
			return nil, terr("tag %d: values past the end of the file", order.Uint16(e))
		}
		raw = data[off : off+n]
	}
	out := make([]uint64, count)
	for i := range out {
		switch size {
		case 1:
			out[i] = uint64(raw[i])
		case 2:
			out[i] = uint64(order.Uint16(raw[2*i:]))
		case 4:
			out[i] = uint64(order.Uint32(raw[4*i:]))
		}
	}
	return out, nil
}
