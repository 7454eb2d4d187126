package mask

import (
	"errors"
	"testing"

	"github.com/rdre-studio/studio/internal/testalloc"
)

// Probe14B is the 14-byte mask.save payload of issue 12: a well-formed encoding of a 16384x16384 mask of
// class 1 (one run of 2^28 pixels). Decoding it allocates 256 MiB, which is right only for an image of
// that size: a server compares the declared size with the image's first (DecodeSize).
var Probe14B = []byte{'R', 1, 0x80, 0x80, 0x01, 0x80, 0x80, 0x01, 1, 0x80, 0x80, 0x80, 0x80, 0x01}

// allocSlack is what a refusal may allocate: an error value, and whatever the test runner's own
// goroutines allocate meanwhile (seen at 5 KiB once), far below the 256 MiB of a decoded probe.
const allocSlack = 64 << 10

func TestProbe14B_IsCheapForAnotherSize(t *testing.T) {
	if len(Probe14B) != 14 {
		t.Fatalf("probe is %d bytes", len(Probe14B))
	}
	w, h, err := Header(Probe14B)
	if err != nil || w != MaxSide || h != MaxSide {
		t.Fatalf("Header: %dx%d, %v", w, h, err)
	}
	var derr error
	n := testalloc.Bytes(func() { _, derr = DecodeSize(Probe14B, 900, 900) })
	if !errors.Is(derr, ErrSize) || !errors.Is(derr, ErrCorrupt) {
		t.Fatalf("DecodeSize for a 900x900 image: %v", derr)
	}
	if n > allocSlack {
		t.Fatalf("refusing the probe allocated %d bytes", n)
	}
}

// TestDecode_MalformedHugeIsCheap: payloads that declare 16384x16384 but whose runs do not cover it
// (too short, too long, a zero run, truncated) are refused before the mask is allocated.
func TestDecode_MalformedHugeIsCheap(t *testing.T) {
	hdr := []byte{'R', 1, 0x80, 0x80, 0x01, 0x80, 0x80, 0x01}
	for name, b := range map[string][]byte{
		"no runs":        hdr,
		"one short run":  append(append([]byte{}, hdr...), 1, 5),
		"run too long":   append(append([]byte{}, hdr...), 1, 0x81, 0x80, 0x80, 0x80, 0x01),
		"zero run":       append(append([]byte{}, hdr...), 1, 0),
		"truncated run":  Probe14B[:13],
		"extra run":      append(append([]byte{}, Probe14B...), 0, 1),
		"runs then junk": append(append([]byte{}, Probe14B...), 7),
	} {
		var err error
		n := testalloc.Bytes(func() { _, err = Decode(b) })
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
		if n > allocSlack {
			t.Errorf("%s: allocated %d bytes before failing", name, n)
		}
	}
}

func TestDecodeSize(t *testing.T) {
	m, _ := New(7, 5)
	m.Pix[3], m.Pix[34] = 2, 9
	got, err := DecodeSize(m.Encode(), 7, 5)
	if err != nil || got.W != 7 || got.H != 5 || got.Pix[3] != 2 || got.Pix[34] != 9 {
		t.Fatalf("DecodeSize: %+v, %v", got, err)
	}
	for _, wh := range [][2]int{{5, 7}, {7, 6}, {0, 0}} {
		if _, err := DecodeSize(m.Encode(), wh[0], wh[1]); !errors.Is(err, ErrSize) {
			t.Errorf("%v: got %v, want ErrSize", wh, err)
		}
	}
}
