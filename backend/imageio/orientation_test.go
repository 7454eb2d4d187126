//go:build !js

package imageio

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/image/tiff"
)

// exifBlock is a TIFF structure as EXIF stores it: IFD0 with a Make tag, then the orientation (of type
// typ), then the end of the IFD chain.
func exifBlock(order binary.ByteOrder, orientation uint16, typ uint16) []byte {
	b := make([]byte, 8+2+2*12+4)
	if order == binary.LittleEndian {
		copy(b, "II")
	} else {
		copy(b, "MM")
	}
	order.PutUint16(b[2:], 42)
	order.PutUint32(b[4:], 8)
	order.PutUint16(b[8:], 2)
	e := b[10:]
	order.PutUint16(e[0:], 0x010F) // Make, ASCII, 4 bytes inline
	order.PutUint16(e[2:], 2)
	order.PutUint32(e[4:], 4)
	copy(e[8:], "Go\x00\x00")
	e = b[22:]
	order.PutUint16(e[0:], orientationTag)
	order.PutUint16(e[2:], typ)
	order.PutUint32(e[4:], 1)
	if typ == 4 {
		order.PutUint32(e[8:], uint32(orientation))
	} else {
		order.PutUint16(e[8:], orientation)
	}
	return b
}

// withExifJPEG puts an APP1 Exif segment right after the SOI of a JPEG.
func withExifJPEG(jpg, block []byte) []byte {
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(2+6+len(block)))
	seg = append(append(seg, "Exif\x00\x00"...), block...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// withApp1 puts an APP1 segment of another kind (XMP) right after the SOI.
func withApp1(jpg []byte, payload string) []byte {
	seg := binary.BigEndian.AppendUint16([]byte{0xFF, 0xE1}, uint16(2+len(payload)))
	out := append(append([]byte{}, jpg[:2]...), append(seg, payload...)...)
	return append(out, jpg[2:]...)
}

// withExifPNG puts an eXIf chunk right after the IHDR of a PNG.
func withExifPNG(p, block []byte) []byte {
	const ihdrEnd = 8 + 8 + 13 + 4
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(block)))
	chunk = append(append(chunk, "eXIf"...), block...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := append([]byte{}, p[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, p[ihdrEnd:]...)
}

// halves is a 32x16 image, left half red, right half blue: any rotation shows.
func halves() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 32, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 32; x++ {
			c := color.RGBA{220, 20, 20, 255}
			if x >= 16 {
				c = color.RGBA{20, 20, 220, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func encJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOrientation_Formats(t *testing.T) {
	jpg := encJPEG(t, halves())
	pngb := encPNG(t, halves())
	var tb bytes.Buffer
	if err := tiff.Encode(&tb, halves(), nil); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		file []byte
		want int
	}{
		"jpeg without exif":    {jpg, 1},
		"jpeg II 6":            {withExifJPEG(jpg, exifBlock(binary.LittleEndian, 6, 3)), 6},
		"jpeg MM 8":            {withExifJPEG(jpg, exifBlock(binary.BigEndian, 8, 3)), 8},
		"jpeg MM 1":            {withExifJPEG(jpg, exifBlock(binary.BigEndian, 1, 3)), 1},
		"jpeg LONG 3":          {withExifJPEG(jpg, exifBlock(binary.LittleEndian, 3, 4)), 3},
		"jpeg out of range 9":  {withExifJPEG(jpg, exifBlock(binary.LittleEndian, 9, 3)), 1},
		"jpeg RATIONAL type":   {withExifJPEG(jpg, exifBlock(binary.LittleEndian, 6, 5)), 1},
		"png without exif":     {pngb, 1},
		"png eXIf 5":           {withExifPNG(pngb, exifBlock(binary.BigEndian, 5, 3)), 5},
		"tiff (tag absent)":    {tb.Bytes(), 1},
		"tiff block alone 7":   {exifBlock(binary.LittleEndian, 7, 3), 7},
		"other format":         {[]byte("BM not really a bitmap"), 1},
		"empty":                {nil, 1},
		"first exif wins (6)":  {withExifJPEG(withExifJPEG(jpg, exifBlock(binary.BigEndian, 3, 3)), exifBlock(binary.BigEndian, 6, 3)), 6},
		"xmp app1 before exif": {withApp1(withExifJPEG(jpg, exifBlock(binary.LittleEndian, 6, 3)), "http://ns.adobe.com/xap/1.0/\x00<x/>"), 6},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Orientation(bytes.NewReader(tc.file))
			if err != nil || got != tc.want {
				t.Fatalf("Orientation = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestOrientation_Malformed(t *testing.T) {
	jpg := encJPEG(t, halves())
	block := exifBlock(binary.LittleEndian, 6, 3)
	bad := append([]byte{}, block...)
	binary.LittleEndian.PutUint32(bad[4:], 60000) // IFD0 far outside the block
	for name, file := range map[string][]byte{
		"ifd outside":     withExifJPEG(jpg, bad),
		"truncated jpeg":  withExifJPEG(jpg, block)[:20],
		"bad byte order":  withExifJPEG(jpg, append([]byte("XX"), block[2:]...)),
		"no marker":       {0xFF, 0xD8, 0x00, 0x00, 0, 0, 0, 0},
		"bad png chunk":   append([]byte("\x89PNG\r\n\x1a\n"), 0xFF, 0xFF, 0xFF, 0xFF, 'e', 'X', 'I', 'f'),
		"truncated tiff":  []byte("II*\x00\x08\x00\x00\x00\x05"),
		"short segment":   {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01, 0, 0},
		"exif too short":  withExifJPEG(jpg, []byte("II*")),
		"entry past end":  withExifJPEG(jpg, block[:20]),
		"negative offset": withExifJPEG(jpg, append(append([]byte{}, block[:4]...), 0xFF, 0xFF, 0xFF, 0xFF)),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Orientation(bytes.NewReader(file))
			if err == nil || got != 1 {
				t.Fatalf("Orientation = %d, %v; want 1 and an error", got, err)
			}
			if _, _, err := ResetOrientation(bytes.NewReader(file), int64(len(file))); err == nil {
				t.Fatal("ResetOrientation accepted it")
			}
		})
	}
}

// The file served in place of one with an EXIF rotation decodes to the same stored pixels, keeps its
// size, and declares no rotation any more; a PNG's chunk CRC stays valid (Go's decoder checks it).
func TestResetOrientation(t *testing.T) {
	jpg := encJPEG(t, halves())
	pngb := encPNG(t, halves())
	for name, file := range map[string][]byte{
		"jpeg":         withExifJPEG(jpg, exifBlock(binary.LittleEndian, 6, 3)),
		"jpeg two":     withExifJPEG(withExifJPEG(jpg, exifBlock(binary.BigEndian, 3, 3)), exifBlock(binary.BigEndian, 6, 4)),
		"png":          withExifPNG(pngb, exifBlock(binary.BigEndian, 8, 3)),
		"jpeg plain":   jpg,
		"png no exif":  pngb,
		"jpeg orient1": withExifJPEG(jpg, exifBlock(binary.LittleEndian, 1, 3)),
	} {
		t.Run(name, func(t *testing.T) {
			declared, err := Orientation(bytes.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			r, got, err := ResetOrientation(bytes.NewReader(file), int64(len(file)))
			if err != nil || got != declared {
				t.Fatalf("ResetOrientation: declared %d, %v; want %d", got, err, declared)
			}
			out, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(file) {
				t.Fatalf("%d bytes out of %d", len(out), len(file))
			}
			if declared == 1 && !bytes.Equal(out, file) {
				t.Fatal("a file without rotation changed")
			}
			if o, err := Orientation(bytes.NewReader(out)); err != nil || o != 1 {
				t.Fatalf("after reset: orientation %d, %v", o, err)
			}
			tags, err := findOrientation(&reader{r: bytes.NewReader(out)}, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, tg := range tags {
				if tg.value != 1 {
					t.Fatalf("a tag still says %d at %d", tg.value, tg.off)
				}
			}
			a, _, err := Decode(bytes.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			b, _, err := Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("decode the reset file: %v", err)
			}
			pa, _, _ := RGB8(a)
			pb, _, _ := RGB8(b)
			if !bytes.Equal(pa, pb) {
				t.Fatal("pixels changed")
			}
		})
	}
}

// Hostile lengths (a segment, chunk or IFD claiming far more than the file holds) cost no memory in
// proportion to the claim.
func TestOrientation_AllocatesNothingForClaims(t *testing.T) {
	big := exifBlock(binary.BigEndian, 6, 3)
	binary.BigEndian.PutUint16(big[8:], 0xFFFF) // 65535 IFD entries
	files := map[string][]byte{
		"jpeg segment 64k": {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8},
		"png chunk 2G":     append([]byte("\x89PNG\r\n\x1a\n"), 0x7F, 0xFF, 0xFF, 0xFF, 'e', 'X', 'I', 'f', 'M', 'M', 0, 42, 0, 0, 0, 8),
		"tiff 65535 tags":  big,
	}
	for name, file := range files {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const runs = 100
		for range runs {
			Orientation(bytes.NewReader(file))
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 2048 {
			t.Errorf("%s: %d bytes allocated per call", name, per)
		}
	}
}

// The shared case: a camera JPEG stored 256x128 with EXIF Orientation 6.
func TestOrientation_SharedCase(t *testing.T) {
	cases := sharedCases(t)
	if cases == "" {
		t.Skip("../shared/cases (the project's shared reference cases) is absent beside the repository")
	}
	p := filepath.Join(cases, "exif-orientation", "exifcat", "test", "crack", "000.jpg")
	f, err := os.Open(p)
	if err != nil {
		t.Skipf("exif-orientation case absent: %v", err)
	}
	defer f.Close()
	o, err := Orientation(f)
	if err != nil || o != 6 {
		t.Fatalf("%s: orientation %d, %v; want 6", p, o, err)
	}
	st, _ := f.Stat()
	r, _, err := ResetOrientation(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := Decode(r)
	if err != nil || img.Bounds().Dx() != 256 || img.Bounds().Dy() != 128 {
		t.Fatalf("reset file: %v, %v", img.Bounds(), err)
	}
}

func FuzzOrientation(f *testing.F) {
	jpg := encJPEG(f, halves())
	f.Add(jpg)
	f.Add(withExifJPEG(jpg, exifBlock(binary.LittleEndian, 6, 3))[:200])
	f.Add(withExifJPEG(jpg, exifBlock(binary.BigEndian, 3, 4))[:200])
	pngb := encPNG(f, halves())
	f.Add(withExifPNG(pngb, exifBlock(binary.BigEndian, 8, 3)))
	f.Add(exifBlock(binary.LittleEndian, 5, 3))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xFF, 0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Orientation(bytes.NewReader(data))
		if o < 1 || o > 8 {
			t.Fatalf("orientation %d outside 1..8 (err %v)", o, err)
		}
		r, _, err := ResetOrientation(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		out, err := io.ReadAll(r)
		if err != nil || len(out) != len(data) {
			t.Fatalf("reset: %d of %d bytes, %v", len(out), len(data), err)
		}
		if o, err := Orientation(bytes.NewReader(out)); err != nil || o != 1 {
			t.Fatalf("after reset: %d, %v", o, err)
		}
	})
}
