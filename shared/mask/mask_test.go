package mask

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"

	"github.com/rdre-studio/studio/internal/testalloc"
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

// FuzzDecode decodes arbitrary payloads. Besides round-tripping, no payload may allocate more than the
// mask it decodes to (width*height bytes) when it is well-formed, and nothing beyond a small allowance
// when it is not, whatever size it declares.
func FuzzDecode(f *testing.F) {
	m, _ := New(5, 3)
	m.Pix[7] = 1
	f.Add(m.Encode())
	f.Add(Probe14B[:13])
	f.Add([]byte{'R', 1, 0x80, 0x80, 0x01, 0x80, 0x80, 0x01, 1, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, h, err := Header(b); err == nil && w*h > 1<<22 {
			// Well-formed, this decodes to up to 256 MiB: check only that another size is refused cheaply.
			var err error
			if n := testalloc.Bytes(func() { _, err = DecodeSize(b, 1, 1) }); n > allocSlack || !errors.Is(err, ErrSize) {
				t.Fatalf("DecodeSize of a %dx%d payload as 1x1: %v after %d bytes", w, h, err, n)
			}
			return
		}
		var got *Label
		var err error
		n := testalloc.Bytes(func() { got, err = Decode(b) })
		limit := uint64(64*len(b) + 64<<10)
		if err == nil {
			limit += uint64(len(got.Pix)) + 64
		}
		if n > limit {
			t.Fatalf("%d-byte payload (err %v) allocated %d bytes", len(b), err, n)
		}
		if err != nil {
			return
		}
		w, h, herr := Header(b)
		if herr != nil || w != got.W || h != got.H {
			t.Fatalf("Header says %dx%d (%v), Decode %dx%d", w, h, herr, got.W, got.H)
		}
		if _, err := DecodeSize(b, w+1, h); !errors.Is(err, ErrSize) {
			t.Fatalf("DecodeSize of another size: %v", err)
		}
		again, err := Decode(got.Encode())
		if err != nil || !bytes.Equal(again.Pix, got.Pix) {
			t.Fatalf("re-encode of a decoded mask failed: %v", err)
		}
	})
}
