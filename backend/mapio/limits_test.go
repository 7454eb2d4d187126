//go:build !js

package mapio

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/rdre-studio/studio/internal/testalloc"
)

// sharedStripTIFF is a w x h float32 TIFF in one-row Deflate strips whose offsets all point at the same
// compressed row of zeros: a small file that declares w*h*4 bytes of map.
func sharedStripTIFF(w, h int) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zw.Write(make([]byte, 4*w))
	zw.Close()
	le := binary.LittleEndian
	type ent struct{ tag, typ, count, val uint32 }
	const nent = 9
	arrays := uint32(8 + 2 + 12*nent + 4)
	data := arrays + uint32(8*h)
	ents := []ent{{256, 4, 1, uint32(w)}, {257, 4, 1, uint32(h)}, {258, 3, 1, 32}, {259, 3, 1, 8}, {273, 4, uint32(h), arrays},
		{277, 3, 1, 1}, {278, 4, 1, 1}, {279, 4, uint32(h), arrays + uint32(4*h)}, {339, 3, 1, 3}}
	b := []byte("II*\x00")
	b = le.AppendUint32(b, 8)
	b = le.AppendUint16(b, nent)
	for _, e := range ents {
		b = le.AppendUint16(b, uint16(e.tag))
		b = le.AppendUint16(b, uint16(e.typ))
		b = le.AppendUint32(b, e.count)
		if e.typ == 3 {
			b = le.AppendUint16(b, uint16(e.val))
			b = le.AppendUint16(b, 0)
		} else {
			b = le.AppendUint32(b, e.val)
		}
	}
	b = le.AppendUint32(b, 0)
	for range h {
		b = le.AppendUint32(b, data)
	}
	for range h {
		b = le.AppendUint32(b, uint32(z.Len()))
	}
	return append(b, z.Bytes()...)
}

func TestReadTIFF_SharedStrips_RefusedBeforeAllocating(t *testing.T) {
	// A few rows sharing one stream decode normally: they are within what the distinct bytes can hold.
	m, err := ReadTIFF(bytes.NewReader(sharedStripTIFF(16, 4)))
	if err != nil || m.W != 16 || m.H != 4 {
		t.Fatalf("small shared-strip TIFF: %dx%d, %v; want 16x4", m.W, m.H, err)
	}
	// 4096 strips of 16 KiB counted from the same ~40 bytes: 64 MiB of map from a 33 KiB file.
	bomb := sharedStripTIFF(4096, 4096)
	var rerr error
	n := testalloc.Bytes(func() { _, rerr = ReadTIFF(bytes.NewReader(bomb)) })
	if !errors.Is(rerr, ErrFormat) {
		t.Fatalf("%d-byte file declaring a 4096x4096 map in shared strips: err %v, want ErrFormat", len(bomb), rerr)
	}
	if limit := uint64(64*len(bomb)) + 1<<20; n > limit {
		t.Fatalf("%d-byte file allocated %d bytes before the refusal, want at most %d", len(bomb), n, limit)
	}
}

func TestReadTIFF_TilesLargerThanFile_Refused(t *testing.T) {
	// A 1x1 map in one 8192x8192 uncompressed tile of 4 bytes: the tile would need 256 MiB.
	good := tiffFloat(binary.LittleEndian, 1, 1, []float32{1}, 0, 1, 1)
	if _, err := ReadTIFF(bytes.NewReader(good)); err != nil {
		t.Fatalf("1x1 tiled TIFF: %v", err)
	}
	big := bytes.Clone(good)
	n := int(binary.LittleEndian.Uint16(big[8:]))
	for i := 0; i < n; i++ {
		e := big[10+12*i:]
		if tag := binary.LittleEndian.Uint16(e); tag == 322 || tag == 323 {
			binary.LittleEndian.PutUint32(e[8:], 8192)
		}
	}
	var rerr error
	alloc := testalloc.Bytes(func() { _, rerr = ReadTIFF(bytes.NewReader(big)) })
	if !errors.Is(rerr, ErrFormat) || alloc > 1<<20 {
		t.Fatalf("1x1 map in an 8192x8192 tile: err %v after %d bytes allocated, want ErrFormat before allocating", rerr, alloc)
	}
}

// mapAllowance is what reading b may allocate: the file itself (read whole, grown by doubling), the
// tag arrays (up to 8 bytes per stored byte), and the map that the file's bytes can justify: a
// compressed byte may expand 4096 times (LZW), each 4 stored bytes become a float32 or float64 once
// more in the output, and a block buffer.
func mapAllowance(b []byte) uint64 {
	return 16*uint64(len(b)) + 3*4096*uint64(len(b)) + 1<<20
}
