// Package mask holds label masks and their compact encoding, shared by the browser editor and the server.
//
// A Label mask is one byte per pixel, row-major: 0 is background (normal), 1..255 is the index of the
// label class the pixel belongs to. A pixel belongs to exactly one class.
//
// Encoding (format version 1): the byte 'R', the byte 1, uvarint width, uvarint height, then runs in
// row-major order, each a class byte followed by a uvarint run length >= 1. Runs must cover exactly
// width*height pixels. Decode refuses anything else, so a hostile payload cannot allocate more than the
// dimensions it declares, and those are bounded by MaxSide.
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

// Decode parses an encoding produced by Encode.
func Decode(b []byte) (*Label, error) {
	if len(b) < 2 || b[0] != magic {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	if b[1] != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, b[1], formatVersion)
	}
	b = b[2:]
	w, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad width", ErrCorrupt)
	}
	b = b[n:]
	h, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad height", ErrCorrupt)
	}
	b = b[n:]
	if w == 0 || h == 0 || w > MaxSide || h > MaxSide {
		return nil, fmt.Errorf("%w: size %dx%d outside 1..%d", ErrCorrupt, w, h, MaxSide)
	}
	m := &Label{W: int(w), H: int(h), Pix: make([]uint8, int(w)*int(h))}
	pos := 0
	for len(b) > 0 {
		v := b[0]
		run, n := binary.Uvarint(b[1:])
		if n <= 0 || run == 0 {
			return nil, fmt.Errorf("%w: bad run at pixel %d", ErrCorrupt, pos)
		}
		if run > uint64(len(m.Pix)-pos) {
			return nil, fmt.Errorf("%w: runs exceed %dx%d pixels", ErrCorrupt, w, h)
		}
		if v != 0 {
			for k := pos; k < pos+int(run); k++ {
				m.Pix[k] = v
			}
		}
		pos += int(run)
		b = b[1+n:]
	}
	if pos != len(m.Pix) {
		return nil, fmt.Errorf("%w: runs cover %d of %d pixels", ErrCorrupt, pos, len(m.Pix))
	}
	return m, nil
}
