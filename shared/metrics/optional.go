package metrics

import "strconv"

// marshalFloat writes v as encoding/json writes a float64 (shortest round-trip form, exponent only for
// very small or large values), so that an Optional prints like the plain metrics beside it.
func marshalFloat(v float64) []byte {
	abs := v
	if abs < 0 {
		abs = -abs
	}
	f := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		f = 'e'
	}
	b := strconv.AppendFloat(nil, v, f, -1, 64)
	if f == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func parseFloat(b []byte) (float64, error) { return strconv.ParseFloat(string(b), 64) }
