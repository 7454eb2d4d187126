//go:build !js

package mapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/internal/testalloc"
)

// fixtureValue is the value gen.py stores at (x, y) of every 5x3 fixture.
func fixtureValue(x, y int) float32 { return float32(float64(y*5+x)/8 - 0.5) }

// checkFixture checks a fixture's values, which float16, float32 and float64 all hold exactly; float64
// files must come back in Data64, the others in Data.
func checkFixture(t *testing.T, name string, m Map, float64File bool) {
	t.Helper()
	if err := checkValues(m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n := len(m.Data)
	if float64File {
		n = len(m.Data64)
	}
	if m.W != 5 || m.H != 3 || n != 15 || (m.Data64 != nil) != float64File {
		t.Fatalf("%s: got %dx%d with %d float32 and %d float64 values, want 5x3 in Data64: %v", name, m.W, m.H, len(m.Data), len(m.Data64), float64File)
	}
	for y := 0; y < 3; y++ {
		for x := 0; x < 5; x++ {
			var got float64
			if float64File {
				got = m.Data64[y*5+x]
			} else {
				got = float64(m.Data[y*5+x])
			}
			if want := float64(fixtureValue(x, y)); got != want {
				t.Fatalf("%s: (%d, %d) = %v, want %v", name, x, y, got, want)
			}
		}
	}
}

// checkValues is the invariant of every Map a reader returns: exactly one of Data and Data64, W*H values.
func checkValues(m Map) error {
	if (m.Data == nil) == (m.Data64 == nil) {
		return fmt.Errorf("%dx%d map with %d float32 and %d float64 values: want exactly one set", m.W, m.H, len(m.Data), len(m.Data64))
	}
	if n := len(m.Data) + len(m.Data64); n != m.W*m.H {
		return fmt.Errorf("%dx%d map with %d values", m.W, m.H, n)
	}
	return nil
}

func TestReadFile_Fixtures_NumpyAndPIL(t *testing.T) {
	for _, name := range []string{"f4_le.npy", "f4_be.npy", "f2_le.npy", "f8_fortran.npy", "f4_1hw.npy", "f4_hw1.npy",
		"f32_raw.tiff", "f32_deflate.tiff", "f32_lzw.tiff", "f32_strips.tiff"} {
		m, err := ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkFixture(t, name, m, strings.HasPrefix(name, "f8"))
	}
}

func TestReadFile_Unsupported_ErrorNamesFile(t *testing.T) {
	for _, name := range []string{"f4_1d.npy", "i4.npy", "u8.tiff", "gen.py", "missing.npy"} {
		_, err := ReadFile(filepath.Join("testdata", name))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
}

func TestWriteNPY_ReadNPY_RoundTrip(t *testing.T) {
	data := []float32{0, -1.5, float32(math.Inf(1)), 3.25, 1e-30, 7}
	var buf bytes.Buffer
	if err := WriteNPY(&buf, 3, 2, data); err != nil {
		t.Fatal(err)
	}
	if (buf.Len()-len(data)*4)%64 != 0 {
		t.Errorf("header not padded to 64 bytes: %d", buf.Len()-len(data)*4)
	}
	m, err := ReadNPY(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if m.W != 3 || m.H != 2 {
		t.Fatalf("size %dx%d", m.W, m.H)
	}
	for i := range data {
		if m.Data[i] != data[i] {
			t.Errorf("value %d: %v want %v", i, m.Data[i], data[i])
		}
	}
	if err := m.CheckFinite(); err == nil {
		t.Error("CheckFinite accepted +Inf")
	}
	if err := WriteNPY(&buf, 2, 2, data); err == nil {
		t.Error("WriteNPY accepted a wrong length")
	}
}

func npyWithHeader(dict string, data []byte) []byte {
	b := append([]byte("\x93NUMPY\x01\x00"), 0, 0)
	binary.LittleEndian.PutUint16(b[8:], uint16(len(dict)))
	return append(append(b, dict...), data...)
}

func TestReadNPY_HostileHeader_Error(t *testing.T) {
	cases := map[string][]byte{
		"empty":         nil,
		"magic only":    []byte("\x93NUMPY"),
		"huge shape":    npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", nil),
		"at max":        npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (16384, 16384), }", []byte{1, 2, 3}),
		"negative":      npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 5), }", nil),
		"overflow":      npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 9), }", nil),
		"zero":          npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", nil),
		"truncated":     npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", make([]byte, 15)),
		"trailing":      npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", make([]byte, 17)),
		"bad dict":      npyWithHeader("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 2), }", make([]byte, 16)),
		"no shape":      npyWithHeader("{'descr': '<f4', 'fortran_order': False}", make([]byte, 16)),
		"object dtype":  npyWithHeader("{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }", make([]byte, 16)),
		"version 9":     []byte("\x93NUMPY\x09\x00\x00\x00"),
		"v2 huge hdr":   []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"),
		"unterminated":  npyWithHeader("{'descr': '<f4", nil),
		"five dims":     npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 2, 2), }", make([]byte, 16)),
		"two channels":  npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", make([]byte, 32)),
		"repeated keys": npyWithHeader("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }", make([]byte, 4)),
	}
	for name, b := range cases {
		if _, err := ReadNPY(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func TestHalfToFloat32_Convert_KnownValues(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x0001: 1.0 / (1 << 24), 0x7bff: 65504, 0x8000: float32(math.Copysign(0, -1)), 0x3555: 0.333251953125} {
		if got := halfToFloat32(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("half %#04x: got %v want %v", h, got, want)
		}
	}
	if !math.IsInf(float64(halfToFloat32(0x7c00)), 1) || !math.IsNaN(float64(halfToFloat32(0x7e00))) {
		t.Error("half inf/nan")
	}
}

// tiffFloat builds an uncompressed float32 TIFF, in strips of rps rows or in tiles of tw x th.
func tiffFloat(order binary.ByteOrder, w, h int, data []float32, rps, tw, th int) []byte {
	vals := make([]float64, len(data))
	for i, v := range data {
		vals[i] = float64(v)
	}
	return tiffSamples(order, w, h, vals, 32, rps, tw, th)
}

// tiffSamples builds an uncompressed TIFF of bits-bit (32 or 64) float samples, in strips of rps rows or in
// tiles of tw x th.
func tiffSamples(order binary.ByteOrder, w, h int, data []float64, bits, rps, tw, th int) []byte {
	put := func(b *bytes.Buffer, v float64) {
		if bits == 32 {
			binary.Write(b, order, float32(v))
		} else {
			binary.Write(b, order, v)
		}
	}
	var hdr bytes.Buffer
	if order == binary.LittleEndian {
		hdr.WriteString("II")
	} else {
		hdr.WriteString("MM")
	}
	binary.Write(&hdr, order, uint16(42))
	binary.Write(&hdr, order, uint32(8))
	var blocks [][]byte
	if tw == 0 {
		for y0 := 0; y0 < h; y0 += rps {
			var b bytes.Buffer
			for _, v := range data[y0*w : min(h, y0+rps)*w] {
				put(&b, v)
			}
			blocks = append(blocks, b.Bytes())
		}
	} else {
		for ty := 0; ty < h; ty += th {
			for tx := 0; tx < w; tx += tw {
				var b bytes.Buffer
				for y := ty; y < ty+th; y++ {
					for x := tx; x < tx+tw; x++ {
						v := -99.0 // padding outside the image
						if x < w && y < h {
							v = data[y*w+x]
						}
						put(&b, v)
					}
				}
				blocks = append(blocks, b.Bytes())
			}
		}
	}
	type ent struct {
		tag, typ uint16
		vals     []uint32
	}
	offTag, cntTag := uint16(273), uint16(279)
	ents := []ent{{256, 4, []uint32{uint32(w)}}, {257, 4, []uint32{uint32(h)}}, {258, 3, []uint32{uint32(bits)}}, {259, 3, []uint32{1}},
		{277, 3, []uint32{1}}, {339, 3, []uint32{3}}}
	if tw == 0 {
		ents = append(ents, ent{278, 4, []uint32{uint32(rps)}})
	} else {
		offTag, cntTag = 324, 325
		ents = append(ents, ent{322, 4, []uint32{uint32(tw)}}, ent{323, 4, []uint32{uint32(th)}})
	}
	// Layout: header, IFD, offset/count arrays, block data.
	n := len(ents) + 2
	ifdLen := 2 + 12*n + 4
	arrays := 8 + ifdLen
	dataStart := arrays + 8*len(blocks)
	offs, cnts := make([]uint32, len(blocks)), make([]uint32, len(blocks))
	pos := dataStart
	for i, b := range blocks {
		offs[i], cnts[i] = uint32(pos), uint32(len(b))
		pos += len(b)
	}
	ents = append(ents, ent{offTag, 4, offs}, ent{cntTag, 4, cnts})
	binary.Write(&hdr, order, uint16(n))
	for i, e := range ents {
		binary.Write(&hdr, order, e.tag)
		binary.Write(&hdr, order, e.typ)
		binary.Write(&hdr, order, uint32(len(e.vals)))
		switch {
		case len(e.vals) > 1 && i >= n-2:
			binary.Write(&hdr, order, uint32(arrays+4*len(blocks)*(i-(n-2))))
		case e.typ == 3:
			binary.Write(&hdr, order, uint16(e.vals[0]))
			binary.Write(&hdr, order, uint16(0))
		default:
			binary.Write(&hdr, order, e.vals[0])
		}
	}
	binary.Write(&hdr, order, uint32(0))
	if len(blocks) > 1 {
		binary.Write(&hdr, order, offs)
		binary.Write(&hdr, order, cnts)
	} else {
		hdr.Write(make([]byte, 8))
	}
	for _, b := range blocks {
		hdr.Write(b)
	}
	return hdr.Bytes()
}

func TestReadTIFF_StripsAndTiles_BothByteOrders(t *testing.T) {
	w, h := 7, 5
	data := make([]float32, w*h)
	for i := range data {
		data[i] = float32(i)*0.25 - 3
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, lay := range []struct{ rps, tw, th int }{{5, 0, 0}, {2, 0, 0}, {1, 0, 0}, {0, 4, 4}, {0, 16, 16}, {0, 7, 5}} {
			m, err := ReadTIFF(bytes.NewReader(tiffFloat(order, w, h, data, lay.rps, lay.tw, lay.th)))
			if err != nil {
				t.Errorf("%v %+v: %v", order, lay, err)
				continue
			}
			if m.W != w || m.H != h {
				t.Errorf("%v %+v: size %dx%d", order, lay, m.W, m.H)
				continue
			}
			for i := range data {
				if m.Data[i] != data[i] {
					t.Errorf("%v %+v: value %d = %v want %v", order, lay, i, m.Data[i], data[i])
					break
				}
			}
		}
	}
}

func TestReadTIFF_HostileFile_Error(t *testing.T) {
	good := tiffFloat(binary.LittleEndian, 3, 2, make([]float32, 6), 2, 0, 0)
	huge := bytes.Clone(good)
	// Width entry value: first IFD entry at 8+2, value field at +8.
	binary.LittleEndian.PutUint32(huge[10+8:], 1<<30)
	bigTIFF := bytes.Clone(good)
	bigTIFF[2] = 43
	cut := good[:len(good)-5]
	offPast := bytes.Clone(good)
	// The strip offset entry is the second to last; point it past the end.
	n := int(binary.LittleEndian.Uint16(good[8:]))
	binary.LittleEndian.PutUint32(offPast[10+12*(n-2)+8:], 1<<31)
	for name, b := range map[string][]byte{"empty": nil, "short": []byte("II*\x00"), "huge width": huge, "bigtiff": bigTIFF,
		"truncated": cut, "offset past end": offPast, "ifd past end": []byte("II*\x00\xff\xff\xff\x00")} {
		if _, err := ReadTIFF(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func FuzzReadNPY(f *testing.F) {
	for _, name := range []string{"f4_le.npy", "f2_le.npy", "f8_fortran.npy", "f4_hw1.npy"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(npyF8(binary.BigEndian, true, 3, 3, float64Values))
	f.Add([]byte("\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (16384, 16384), }"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Map
		var err error
		n := testalloc.Bytes(func() { m, err = ReadNPY(bytes.NewReader(b)) })
		// .npy is never compressed: reads, values and output stay within a small multiple of the file.
		if limit := 16*uint64(len(b)) + 1<<20; n > limit {
			t.Fatalf("%d-byte .npy (err %v) allocated %d bytes, want at most %d", len(b), err, n, limit)
		}
		if err == nil {
			if err := checkValues(m); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzReadTIFF(f *testing.F) {
	for _, name := range []string{"f32_raw.tiff", "f32_deflate.tiff", "f32_lzw.tiff", "u8.tiff"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(tiffFloat(binary.BigEndian, 5, 3, make([]float32, 15), 0, 4, 4))
	f.Add(tiffSamples(binary.LittleEndian, 3, 3, float64Values, 64, 2, 0, 0))
	f.Add(sharedStripTIFF(64, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Map
		var err error
		n := testalloc.Bytes(func() { m, err = ReadTIFF(bytes.NewReader(b)) })
		if limit := mapAllowance(b); n > limit {
			t.Fatalf("%d-byte TIFF (err %v) allocated %d bytes, want at most %d", len(b), err, n, limit)
		}
		if err == nil {
			if err := checkValues(m); err != nil {
				t.Fatal(err)
			}
		}
	})
}
