// Package mask holds label masks and their compact encoding, shared by the browser editor and the server.
//
// A Label mask is one byte per pixel, row-major: 0 is background (normal), 1..255 is the index of the
// label class the pixel belongs to. A pixel belongs to exactly one class.
//
// Encoding (format version 1): the byte 'R', the byte 1, uvarint width, uvarint height, then runs in
// row-major order, each a class byte followed by a uvarint run length >= 1. Runs must cover exactly
// width*height pixels. Decode refuses anything else, and checks all of it before it allocates, so a
// malformed payload costs nothing and a well-formed one the width*height bytes it declares (at most
// MaxSide*MaxSide). A 14-byte payload can legitimately declare a 16384x16384 mask of one class: a server
// must compare the declared size with the image's (Header, DecodeSize) before decoding.
package mask

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxSide bounds a mask's width and height.
const MaxSide = 16384

const (
	magic         = 'R'
	formatVersion = 1
)

// Label is a label mask.
type Label struct {
	W, H int
	Pix  []uint8
}

// New returns an all-background mask.
func New(w, h int) (*Label, error) {
	if w <= 0 || h <= 0 || w > MaxSide || h > MaxSide {
		return nil, fmt.Errorf("mask size %dx%d outside 1..%d", w, h, MaxSide)
	}
	return &Label{W: w, H: h, Pix: make([]uint8, w*h)}, nil
}

// Count returns the number of non-background pixels.
func (m *Label) Count() int {
	n := 0
	for _, v := range m.Pix {
		if v != 0 {
			n++
		}
	}
	return n
}

// Binary returns a 0/1 defect mask (any class counts as defect).
func (m *Label) Binary() []bool {
	out := make([]bool, len(m.Pix))
	for i, v := range m.Pix {
		out[i] = v != 0
	}
	return out
}

// Encode returns the run-length encoding of m.
func (m *Label) Encode() []byte {
	out := make([]byte, 0, 16)
	out = append(out, magic, formatVersion)
	out = binary.AppendUvarint(out, uint64(m.W))
	out = binary.AppendUvarint(out, uint64(m.H))
	for i := 0; i < len(m.Pix); {
		v := m.Pix[i]
		j := i + 1
		for j < len(m.Pix) && m.Pix[j] == v {
			j++
		}
		out = append(out, v)
		out = binary.AppendUvarint(out, uint64(j-i))
		i = j
	}
	return out
}

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("corrupt mask encoding")

// ErrSize is wrapped (with ErrCorrupt) when an encoding declares another size than the one expected.
var ErrSize = errors.New("mask size differs from the image's")

// Header reads the size an encoding declares, without decoding (or allocating) anything. The size is
// within 1..MaxSide on both sides when err is nil.
func Header(b []byte) (w, h int, err error) {
	w, h, _, err = header(b)
	return w, h, err
}

func header(b []byte) (w, h int, runs []byte, err error) {
	if len(b) < 2 || b[0] != magic {
		return 0, 0, nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	if b[1] != formatVersion {
		return 0, 0, nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, b[1], formatVersion)
	}
	b = b[2:]
	uw, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, nil, fmt.Errorf("%w: bad width", ErrCorrupt)
	}
	b = b[n:]
	uh, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, nil, fmt.Errorf("%w: bad height", ErrCorrupt)
	}
	b = b[n:]
	if uw == 0 || uh == 0 || uw > MaxSide || uh > MaxSide {
		return 0, 0, nil, fmt.Errorf("%w: size %dx%d outside 1..%d", ErrCorrupt, uw, uh, MaxSide)
	}
	return int(uw), int(uh), b, nil
}

// Decode parses an encoding produced by Encode. It checks the whole encoding (header, runs, their total)
// before it allocates the mask, so a malformed payload costs nothing whatever size it declares; a
// well-formed one allocates the width*height bytes it declares. A server that knows the size the mask
// must have calls DecodeSize, which refuses any other size before allocating.
func Decode(b []byte) (*Label, error) {
	w, h, runs, err := header(b)
	if err != nil {
		return nil, err
	}
	return decodeRuns(w, h, runs)
}

// DecodeSize is Decode for a mask that must be w x h: an encoding that declares another size is refused
// (ErrSize) before anything is allocated.
func DecodeSize(b []byte, w, h int) (*Label, error) {
	dw, dh, runs, err := header(b)
	if err != nil {
		return nil, err
	}
	if dw != w || dh != h {
		return nil, fmt.Errorf("%w: %w: the encoding is %dx%d, want %dx%d", ErrCorrupt, ErrSize, dw, dh, w, h)
	}
	return decodeRuns(w, h, runs)
}

// decodeRuns checks that the runs cover exactly w*h pixels, then fills a new mask with them.
func decodeRuns(w, h int, runs []byte) (*Label, error) {
	total := uint64(w) * uint64(h)
	pos := uint64(0)
	for b := runs; len(b) > 0; {
		run, n := binary.Uvarint(b[1:])
		if n <= 0 || run == 0 {
			return nil, fmt.Errorf("%w: bad run at pixel %d", ErrCorrupt, pos)
		}
		if run > total-pos {
			return nil, fmt.Errorf("%w: runs exceed %dx%d pixels", ErrCorrupt, w, h)
		}
		pos += run
		b = b[1+n:]
	}
	if pos != total {
		return nil, fmt.Errorf("%w: runs cover %d of %d pixels", ErrCorrupt, pos, total)
	}
	m := &Label{W: w, H: h, Pix: make([]uint8, total)}
	p := 0
	for b := runs; len(b) > 0; {
		v := b[0]
		run, n := binary.Uvarint(b[1:])
		if v != 0 {
			seg := m.Pix[p : p+int(run)]
			for k := range seg {
				seg[k] = v
			}
		}
		p += int(run)
		b = b[1+n:]
	}
	return m, nil
}
