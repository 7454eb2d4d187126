package submission

import "math"

// MaxHalf is the largest finite float16.
const MaxHalf = 65504

// toHalf converts v to the nearest float16 (ties to even) in one rounding, as numpy's
// astype(np.float16) does from float32 or float64. Finite values beyond the float16 range are clamped to
// +-MaxHalf (clamped reports it) instead of becoming infinities.
func toHalf(v float64) (h uint16, clamped bool) {
	b := math.Float64bits(v)
	sign := uint16(b>>48) & 0x8000
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	if exp == 0x7ff {
		if mant != 0 {
			return sign | 0x7e00, false // NaN
		}
		return sign | 0x7c00, false
	}
	e := exp - 1023 + 15
	if e <= 0 {
		// A float16 subnormal (or zero): the value in units of 2^-24 is M * 2^(e-43).
		if e < -10 {
			return sign, false
		}
		M := mant | 1<<52
		s := uint(43 - e)
		m := M >> s
		rem := M & (1<<s - 1)
		half := uint64(1) << (s - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++ // 0x400 is the smallest normal, encoded as it is
		}
		return sign | uint16(m), false
	}
	m := mant >> 42
	rem := mant & (1<<42 - 1)
	if rem > 1<<41 || (rem == 1<<41 && m&1 == 1) {
		m++
		if m == 0x400 {
			m = 0
			e++
		}
	}
	if e >= 0x1f {
		return sign | 0x7bff, true
	}
	return sign | uint16(e)<<10 | uint16(m), false
}

// fromHalf converts a float16 to float32 exactly.
func fromHalf(h uint16) float32 {
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
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
