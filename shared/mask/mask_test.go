package mask

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

func TestLabel_Encode_RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, size := range [][2]int{{1, 1}, {3, 7}, {64, 64}, {257, 31}} {
		m, err := New(size[0], size[1])
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Pix {
			if rng.Intn(4) == 0 {
				m.Pix[i] = uint8(rng.Intn(3))
			}
		}
		got, err := Decode(m.Encode())
		if err != nil {
			t.Fatalf("%v: decode: %v", size, err)
		}
		if got.W != m.W || got.H != m.H || !bytes.Equal(got.Pix, m.Pix) {
			t.Fatalf("%v: round trip changed the mask", size)
		}
	}
}

func TestDecode_Hostile(t *testing.T) {
	m, _ := New(4, 4)
	m.Pix[5] = 2
	good := m.Encode()
	cases := map[string][]byte{
		"empty":       nil,
		"bad magic":   append([]byte{'X'}, good[1:]...),
		"bad version": append([]byte{'R', 9}, good[2:]...),
		"truncated":   good[:len(good)-1],
		"extra run":   append(append([]byte{}, good...), 0, 1),
		"huge":        {'R', 1, 0xff, 0xff, 0xff, 0x7f, 0x01},
		"zero run":    {'R', 1, 1, 1, 0, 0},
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	m, _ := New(5, 3)
	m.Pix[7] = 1
	f.Add(m.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(got.Encode())
		if err != nil || !bytes.Equal(again.Pix, got.Pix) {
			t.Fatalf("re-encode of a decoded mask failed: %v", err)
		}
	})
}
