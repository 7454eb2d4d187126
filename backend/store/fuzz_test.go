//go:build !js

package store

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/rdre-studio/studio/internal/testalloc"
	"github.com/rdre-studio/studio/shared/mask"
)

// decodeMaskRecord is what Mask and RevertMask do with a stored record.
func decodeMaskRecord(raw []byte) (*mask.Label, error) {
	ri, err := decodeMaskHeader(raw)
	if err != nil {
		return nil, err
	}
	return mask.Decode(ri.body)
}

// FuzzMaskRecord decodes arbitrary mask records. Besides not panicking, a record may allocate the mask
// it decodes to (width*height bytes, and only when it is well-formed) and little else.
func FuzzMaskRecord(f *testing.F) {
	m, _ := mask.New(6, 4)
	m.Pix[5], m.Pix[17] = 1, 3
	rec := encodeMaskRecord(m, time.Unix(1700000000, 0))
	f.Add(rec)
	f.Add(append([]byte{1}, rec[1:13]...)) // format 1: no majority byte
	f.Add(append(append([]byte{}, rec[:14]...), 'R', 1, 0x80, 0x80, 0x01, 0x80, 0x80, 0x01, 1, 5))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if ri, err := decodeMaskHeader(raw); err == nil {
			if w, h, err := mask.Header(ri.body); err == nil && w*h > 1<<22 {
				return // well-formed, it would decode to up to 256 MiB; shared/mask's fuzz covers the runs
			}
		}
		var got *mask.Label
		var err error
		n := testalloc.Bytes(func() { got, err = decodeMaskRecord(raw) })
		limit := uint64(64*len(raw) + 64<<10)
		if err == nil {
			limit += uint64(len(got.Pix))
		}
		if n > limit {
			t.Fatalf("%d-byte record (err %v) allocated %d bytes", len(raw), err, n)
		}
	})
}

// FuzzMapRecord decodes arbitrary map records. An 'H' record may allocate twice its size; an 'F' record
// its S*S values and the resampling to the w x h its header declares (the image's size, by design), and
// nothing when it is malformed.
func FuzzMapRecord(f *testing.F) {
	h := []byte{'H', mapFormat}
	h = binary.AppendUvarint(h, 3)
	h = binary.AppendUvarint(h, 2)
	for i := range 6 {
		h = binary.LittleEndian.AppendUint16(h, Float16(float32(i)/5))
	}
	f.Add(h)
	fm := []byte{'F', mapFormat}
	fm = binary.AppendUvarint(fm, 2)
	fm = binary.AppendUvarint(fm, 5)
	fm = binary.AppendUvarint(fm, 3)
	for i := range 4 {
		fm = binary.LittleEndian.AppendUint32(fm, math.Float32bits(float32(i)))
	}
	f.Add(fm)
	f.Add([]byte{'H', mapFormat, 0x80, 0x80, 0x01, 0x80, 0x80, 0x01})
	f.Add([]byte{'F', mapFormat, 1, 0x80, 0x80, 0x01, 0x80, 0x80, 0x01, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		// What an 'F' header declares: the output it resamples to.
		var out uint64
		if len(raw) > 2 && raw[0] == 'F' {
			var dims [3]uint64
			b := raw[2:]
			for i := range dims {
				v, n := binary.Uvarint(b)
				if n <= 0 {
					break
				}
				dims[i], b = v, b[n:]
			}
			if dims[1]*dims[2] > 1<<22 || dims[0]*dims[1] > 1<<22 {
				return // a valid record for an image this large resamples to gigabytes: slow, not wrong
			}
			// The S*S values, the width pass, the output, and the two axes' index and weight tables.
			out = 4*(dims[0]*dims[0]+dims[0]*dims[1]+dims[1]*dims[2]) + 24*(dims[1]+dims[2])
		}
		var err error
		n := testalloc.Bytes(func() { _, _, _, err = decodeMapRecord(raw) })
		limit := uint64(4*len(raw) + 64<<10)
		if err == nil {
			limit += out
		}
		if n > limit {
			t.Fatalf("%d-byte record (err %v) allocated %d bytes", len(raw), err, n)
		}
	})
}
