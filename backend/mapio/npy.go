//go:build !js

// Package mapio reads and writes anomaly maps: numpy .npy files (float16, float32, float64, either byte
// order, C or Fortran order) and 32-bit float TIFF files (the format of the MVTec AD evaluation code), reads
// ground-truth masks, and loads a whole evaluation set in MVTec AD layout for the metrics engine (LoadEval).
//
// Contract: a reader returns a Map or an error that says what is wrong with the file; it never panics on
// hostile input, and it checks declared sizes against MaxPixels and against the bytes actually present
// before it allocates for them (for compressed TIFF, against the most its stored bytes can expand to), so a
// small file cannot make it allocate for a huge declared shape.
// Values keep the precision of the file: float16 and float32 maps are returned in Map.Data (float16 converts
// to float32 exactly), float64 maps in Map.Data64, unrounded, so that scores float32 would merge stay apart
// and values beyond the float32 range stay finite; exactly one of the two is set. NaN and infinities are
// returned as they are: Map.CheckFinite reports them.
package mapio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxPixels bounds the size of one map (16k x 16k), as imageio bounds images.
const MaxPixels = 16384 * 16384

// ErrFormat is wrapped by every error about the content of a file.
var ErrFormat = errors.New("malformed or unsupported map")

// Map is a row-major H x W anomaly map. Exactly one of Data and Data64 holds its W*H values: Data64 when
// the file stores float64, Data otherwise (metrics.Image.Map64 and Map take them as they are).
type Map struct {
	W, H   int
	Data   []float32
	Data64 []float64
}

// CheckFinite returns an error naming the first pixel that is NaN or infinite.
func (m Map) CheckFinite() error {
	for i, v := range m.Data {
		// All exponent bits set: NaN or an infinity (one test per value; it runs over every pixel of a set).
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return fmt.Errorf("%w: value %v at pixel (x %d, y %d) is not finite", ErrFormat, v, i%m.W, i/m.W)
		}
	}
	for i, v := range m.Data64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: value %v at pixel (x %d, y %d) is not finite", ErrFormat, v, i%m.W, i/m.W)
		}
	}
	return nil
}

// ReadFile reads a map by its extension: .npy, .tif or .tiff. Errors name the file.
func ReadFile(path string) (Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return Map{}, fmt.Errorf("read map: %w", err)
	}
	defer f.Close()
	var m Map
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		var size int64 = -1
		if st, serr := f.Stat(); serr == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		m, err = readNPY(f, size)
	case ".tif", ".tiff":
		m, err = ReadTIFF(f)
	default:
		return Map{}, fmt.Errorf("read map %s: unknown extension (want .npy, .tif or .tiff)", path)
	}
	if err != nil {
		return Map{}, fmt.Errorf("read map %s: %w", path, err)
	}
	return m, nil
}

var npyMagic = []byte("\x93NUMPY")

// maxNPYHeader bounds the header dict; numpy writes well under 1 KiB.
const maxNPYHeader = 1 << 16

// ReadNPY reads a numpy .npy array of shape (H, W), (1, H, W), (H, W, 1) or (1, 1, H, W).
func ReadNPY(r io.Reader) (Map, error) { return readNPY(r, -1) }

// readNPY is ReadNPY for a stream of fileSize bytes (-1: unknown). With the size known, a file whose
// data has exactly the length its header declares is read into a buffer of that size at once; without
// it the buffer grows with the bytes that really arrive, so a header alone never allocates its shape.
func readNPY(r io.Reader, fileSize int64) (Map, error) {
	br := bufio.NewReader(r)
	pre := make([]byte, 8)
	if _, err := io.ReadFull(br, pre); err != nil {
		return Map{}, fmt.Errorf("%w: npy preamble: %v", ErrFormat, err)
	}
	if !bytes.Equal(pre[:6], npyMagic) {
		return Map{}, fmt.Errorf("%w: not an npy file (bad magic)", ErrFormat)
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return Map{}, fmt.Errorf("%w: npy header length: %v", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return Map{}, fmt.Errorf("%w: npy header length: %v", ErrFormat, err)
		}
		n := binary.LittleEndian.Uint32(b[:])
		if n > maxNPYHeader {
			return Map{}, fmt.Errorf("%w: npy header of %d bytes", ErrFormat, n)
		}
		hlen = int(n)
	default:
		return Map{}, fmt.Errorf("%w: npy format version %d.%d", ErrFormat, pre[6], pre[7])
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return Map{}, fmt.Errorf("%w: npy header: %v", ErrFormat, err)
	}
	h, err := parseNPYHeader(string(hdr))
	if err != nil {
		return Map{}, err
	}
	H, W, err := mapShape(h.shape)
	if err != nil {
		return Map{}, err
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch h.descr[0] {
	case '<', '|', '=':
	case '>':
		order = binary.BigEndian
	}
	var size int
	switch h.descr[1:] {
	case "f2":
		size = 2
	case "f4":
		size = 4
	case "f8":
		size = 8
	default:
		return Map{}, fmt.Errorf("%w: npy dtype %q (want float16, float32 or float64)", ErrFormat, h.descr)
	}
	n := W * H
	var raw []byte
	if consumed := int64(8 + len(hdr) + map[bool]int{true: 2, false: 4}[pre[6] == 1]); fileSize-consumed == int64(n*size) {
		raw = make([]byte, n*size)
		if _, err := io.ReadFull(br, raw); err != nil {
			return Map{}, fmt.Errorf("%w: npy data: %v", ErrFormat, err)
		}
	} else {
		// Read through a limit and let the buffer grow with the bytes that really arrive.
		if raw, err = io.ReadAll(io.LimitReader(br, int64(n*size)+1)); err != nil {
			return Map{}, fmt.Errorf("%w: npy data: %v", ErrFormat, err)
		}
	}
	if len(raw) != n*size {
		if len(raw) > n*size {
			return Map{}, fmt.Errorf("%w: npy data longer than its shape %v says", ErrFormat, h.shape)
		}
		return Map{}, fmt.Errorf("%w: npy data truncated: %d bytes, shape %v needs %d", ErrFormat, len(raw), h.shape, n*size)
	}
	if !h.fortran && size == 4 {
		// The common case (what `rdre infer` and numpy.save write) in one tight loop.
		data := make([]float32, n)
		for i := range data {
			data[i] = math.Float32frombits(order.Uint32(raw[4*i:]))
		}
		return Map{W: W, H: H, Data: data}, nil
	}
	// Fortran order stores column by column: element (y, x) at x*H + y.
	src := func(i int) []byte {
		j := i
		if h.fortran {
			j = (i%W)*H + i/W
		}
		return raw[j*size : (j+1)*size]
	}
	if size == 8 {
		data := make([]float64, n)
		for i := range data {
			data[i] = math.Float64frombits(order.Uint64(src(i)))
		}
		return Map{W: W, H: H, Data64: data}, nil
	}
	data := make([]float32, n)
	for i := range data {
		if size == 2 {
			data[i] = halfToFloat32(order.Uint16(src(i)))
		} else {
			data[i] = math.Float32frombits(order.Uint32(src(i)))
		}
	}
	return Map{W: W, H: H, Data: data}, nil
}

type npyHeader struct {
	descr   string
	fortran bool
	shape   []int
}

// parseNPYHeader reads the Python dict literal of an npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (256, 256), }.
func parseNPYHeader(s string) (npyHeader, error) {
	var h npyHeader
	bad := func(what string) (npyHeader, error) {
		return npyHeader{}, fmt.Errorf("%w: npy header %s: %.200q", ErrFormat, what, s)
	}
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return bad("is not a dict")
	}
	body := s[1 : len(s)-1]
	seen := map[string]bool{}
	for {
		body = strings.TrimLeft(body, " ,\t\n")
		if body == "" {
			break
		}
		q := body[0]
		if q != '\'' && q != '"' {
			return bad("has a key that is not a string")
		}
		end := strings.IndexByte(body[1:], q)
		if end < 0 {
			return bad("has an unterminated key")
		}
		k := body[1 : 1+end]
		body = strings.TrimLeft(body[2+end:], " \t")
		if !strings.HasPrefix(body, ":") {
			return bad("misses a colon")
		}
		body = strings.TrimLeft(body[1:], " \t")
		if seen[k] {
			return bad("repeats key " + k)
		}
		seen[k] = true
		switch k {
		case "descr":
			if body == "" || (body[0] != '\'' && body[0] != '"') {
				return bad("descr is not a string")
			}
			e := strings.IndexByte(body[1:], body[0])
			if e < 0 {
				return bad("descr is unterminated")
			}
			h.descr = body[1 : 1+e]
			body = body[2+e:]
		case "fortran_order":
			switch {
			case strings.HasPrefix(body, "False"):
				body = body[5:]
			case strings.HasPrefix(body, "True"):
				h.fortran = true
				body = body[4:]
			default:
				return bad("fortran_order is not a bool")
			}
		case "shape":
			if !strings.HasPrefix(body, "(") {
				return bad("shape is not a tuple")
			}
			e := strings.IndexByte(body, ')')
			if e < 0 {
				return bad("shape is unterminated")
			}
			for _, f := range strings.Split(body[1:e], ",") {
				f = strings.TrimSpace(f)
				if f == "" {
					continue
				}
				v, err := strconv.Atoi(f)
				if err != nil || v < 0 {
					return bad("shape has a bad dimension")
				}
				if len(h.shape) >= 8 {
					return bad("shape has too many dimensions")
				}
				h.shape = append(h.shape, v)
			}
			body = body[e+1:]
		default:
			return bad("has unknown key " + k)
		}
	}
	if !seen["descr"] || !seen["shape"] || !seen["fortran_order"] {
		return bad("misses descr, fortran_order or shape")
	}
	if len(h.descr) < 2 {
		return bad("descr is too short")
	}
	return h, nil
}

// mapShape accepts (H, W), (1, H, W), (H, W, 1) and (1, 1, H, W) and bounds the size.
func mapShape(shape []int) (H, W int, err error) {
	dims := shape
	switch {
	case len(dims) == 2:
	case len(dims) == 3 && dims[0] == 1:
		dims = dims[1:]
	case len(dims) == 3 && dims[2] == 1:
		dims = dims[:2]
	case len(dims) == 4 && dims[0] == 1 && dims[1] == 1:
		dims = dims[2:]
	default:
		return 0, 0, fmt.Errorf("%w: shape %v is not a single 2-D map (want (H, W), (1, H, W), (H, W, 1) or (1, 1, H, W))", ErrFormat, shape)
	}
	H, W = dims[0], dims[1]
	if H <= 0 || W <= 0 || H > MaxPixels || W > MaxPixels || H*W > MaxPixels {
		return 0, 0, fmt.Errorf("%w: shape %v is outside 1..%d pixels", ErrFormat, shape, MaxPixels)
	}
	return H, W, nil
}

// halfToFloat32 converts an IEEE 754 binary16 value.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp == 0:
		if frac == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = frac * 2^-24, exact in float32.
		v := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// WriteNPY writes a little-endian float32 C-order .npy array of shape (h, w).
func WriteNPY(dst io.Writer, w, h int, data []float32) error {
	if w <= 0 || h <= 0 || len(data) != w*h {
		return fmt.Errorf("write npy: %d values for a %dx%d map", len(data), w, h)
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", h, w)
	// Pad so that the data starts at a multiple of 64 bytes, as numpy does; the header ends with '\n'.
	total := len(npyMagic) + 2 + 2 + len(dict) + 1
	pad := (64 - total%64) % 64
	hdr := dict + strings.Repeat(" ", pad) + "\n"
	if len(hdr) > math.MaxUint16 {
		return errors.New("write npy: header too long")
	}
	bw := bufio.NewWriter(dst)
	bw.Write(npyMagic)
	bw.Write([]byte{1, 0})
	binary.Write(bw, binary.LittleEndian, uint16(len(hdr)))
	bw.WriteString(hdr)
	// Encode in chunks: one PutUint32 per value into a reused buffer, one Write per chunk (a Write per
	// value cost a tenth of `rdre infer`'s CPU time).
	buf := make([]byte, 4*min(len(data), 16384))
	for len(data) > 0 {
		n := min(len(data), len(buf)/4)
		for i, v := range data[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		bw.Write(buf[:4*n])
		data = data[n:]
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write npy: %w", err)
	}
	return nil
}
