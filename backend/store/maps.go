//go:build !js

package store

import (
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/rdre-studio/studio/backend/resample"
	"github.com/rdre-studio/studio/shared/mask"
)

const mapFormat = 1

// PutModelMap stores a job's anomaly map of one image losslessly as the model's s x s output and the
// image's size w x h; Map recomputes the w x h map from it exactly as inference does.
func (s *Store) PutModelMap(jobID, imageID string, size, w, h int, raw []float32) error {
	if err := checkKey("job id", jobID); err != nil {
		return err
	}
	if err := checkKey("image id", imageID); err != nil {
		return err
	}
	if size <= 0 || size > mask.MaxSide || w <= 0 || h <= 0 || w > mask.MaxSide || h > mask.MaxSide || len(raw) != size*size {
		return fmt.Errorf("put model map of %s for job %s: %w: %dx%d model map with %d values for a %dx%d image", imageID, jobID, ErrInvalid, size, size, len(raw), w, h)
	}
	out := make([]byte, 0, 2+3*binary.MaxVarintLen64+4*len(raw))
	out = append(out, 'F', mapFormat)
	out = binary.AppendUvarint(out, uint64(size))
	out = binary.AppendUvarint(out, uint64(w))
	out = binary.AppendUvarint(out, uint64(h))
	for _, v := range raw {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return s.putMapRecord(jobID, imageID, out)
}

func (s *Store) putMapRecord(jobID, imageID string, rec []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bMaps).CreateBucketIfNotExists([]byte(jobID))
		if err != nil {
			return err
		}
		return b.Put([]byte(imageID), rec)
	})
	if err != nil {
		return fmt.Errorf("put map of %s for job %s: %w", imageID, jobID, err)
	}
	return nil
}

// decodeModelMap reads an 'F' record (header already checked) and resizes it to the image's size.
func decodeModelMap(raw []byte) ([]float32, int, int, error) {
	var dims [3]uint64
	for i := range dims {
		v, n := binary.Uvarint(raw)
		if n <= 0 {
			return nil, 0, 0, fmt.Errorf("bad dimension %d", i)
		}
		dims[i], raw = v, raw[n:]
	}
	size, w, h := dims[0], dims[1], dims[2]
	if size == 0 || w == 0 || h == 0 || size > mask.MaxSide || w > mask.MaxSide || h > mask.MaxSide || uint64(len(raw)) != 4*size*size {
		return nil, 0, 0, fmt.Errorf("%dx%d model map for %dx%d with %d data bytes: damaged", size, size, w, h, len(raw))
	}
	m := make([]float32, size*size)
	for i := range m {
		m[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	out, err := resample.MapToImage(m, int(size), int(w), int(h))
	if err != nil {
		return nil, 0, 0, err
	}
	return out, int(w), int(h), nil
}

// PutMap stores a job's anomaly map of one image (w x h, row-major) as float16; see the package doc for
// what the conversion loses.
func (s *Store) PutMap(jobID, imageID string, w, h int, m []float32) error {
	if err := checkKey("job id", jobID); err != nil {
		return err
	}
	if err := checkKey("image id", imageID); err != nil {
		return err
	}
	if w <= 0 || h <= 0 || w > mask.MaxSide || h > mask.MaxSide || len(m) != w*h {
		return fmt.Errorf("put map of %s for job %s: %w: %dx%d with %d values", imageID, jobID, ErrInvalid, w, h, len(m))
	}
	out := make([]byte, 0, 2+2*binary.MaxVarintLen64+2*len(m))
	out = append(out, 'H', mapFormat)
	out = binary.AppendUvarint(out, uint64(w))
	out = binary.AppendUvarint(out, uint64(h))
	for _, v := range m {
		out = binary.LittleEndian.AppendUint16(out, Float16(v))
	}
	return s.putMapRecord(jobID, imageID, out)
}

// Map returns a stored anomaly map at its image's size: exactly as stored by PutModelMap, or widened back
// to float32 from PutMap's float16.
func (s *Store) Map(jobID, imageID string) ([]float32, int, int, error) {
	var (
		out  []float32
		w, h int
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bMaps).Bucket([]byte(jobID))
		if b == nil {
			return fmt.Errorf("map of %s for job %s: %w", imageID, jobID, ErrNotFound)
		}
		raw := b.Get([]byte(imageID))
		if raw == nil {
			return fmt.Errorf("map of %s for job %s: %w", imageID, jobID, ErrNotFound)
		}
		var err error
		// The decoded map is new memory: nothing refers to bbolt's slices, which die with the tx.
		out, w, h, err = decodeMapRecord(raw)
		if err != nil {
			return fmt.Errorf("map of %s for job %s: %w", imageID, jobID, err)
		}
		return nil
	})
	if err != nil {
		return nil, 0, 0, err
	}
	return out, w, h, nil
}

// decodeMapRecord reads a map record ('F' or 'H', see the package doc) into a w x h map. It checks the
// header against the data it carries before allocating: an 'H' record allocates twice its size, an 'F'
// record its S*S values and the w x h map its header declares (the image's size).
func decodeMapRecord(raw []byte) ([]float32, int, int, error) {
	if len(raw) >= 2 && raw[0] == 'F' && raw[1] == mapFormat {
		return decodeModelMap(raw[2:])
	}
	if len(raw) < 2 || raw[0] != 'H' || raw[1] != mapFormat {
		return nil, 0, 0, fmt.Errorf("bad header")
	}
	raw = raw[2:]
	uw, n := binary.Uvarint(raw)
	if n <= 0 {
		return nil, 0, 0, fmt.Errorf("bad width")
	}
	raw = raw[n:]
	uh, n := binary.Uvarint(raw)
	if n <= 0 {
		return nil, 0, 0, fmt.Errorf("bad height")
	}
	raw = raw[n:]
	if uw == 0 || uh == 0 || uw > mask.MaxSide || uh > mask.MaxSide || uint64(len(raw)) != 2*uw*uh {
		return nil, 0, 0, fmt.Errorf("%dx%d with %d data bytes: damaged", uw, uh, len(raw))
	}
	out := make([]float32, uw*uh)
	for i := range out {
		out[i] = Float32(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return out, int(uw), int(uh), nil
}

// MapKeys lists the images that have a map for the job, sorted.
func (s *Store) MapKeys(jobID string) ([]string, error) {
	out := []string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bMaps).Bucket([]byte(jobID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("maps of job %s: %w", jobID, err)
	}
	return out, nil
}

// Float16 converts to IEEE 754 binary16 with round-to-nearest-even; overflow gives Inf, NaN stays NaN.
func Float16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b >> 23) & 0xff)
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp == 0 && mant == 0:
		return sign
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero): shift the full mantissa (with its implicit 1) into place.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, up to Inf: the right result
	}
	return sign | uint16(half)
}

// Float32 widens an IEEE 754 binary16 value exactly.
func Float32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = mant * 2^-24, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
