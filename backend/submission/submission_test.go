package submission

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"
)

// TestToHalf_RoundTrip_EveryHalf: every finite float16 converts to float32 and back to itself.
func TestToHalf_RoundTrip_EveryHalf(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 {
			continue // infinities and NaNs
		}
		f := fromHalf(uint16(h))
		if got, c := toHalf(float64(f)); got != uint16(h) || c {
			t.Fatalf("half %#04x -> %v -> %#04x (clamped %v)", h, f, got, c)
		}
	}
}

// TestToHalf_Nearest_Random: the result is the nearest float16 (ties to an even mantissa), beyond the range
// clamped to +-65504; checked against the two neighbours of the result.
func TestToHalf_Nearest_Random(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		var v float64
		switch r.IntN(4) {
		case 0:
			v = r.Float64()
		case 1:
			v = (r.Float64() - 0.5) * 1e-4 // subnormal halves
		case 2:
			v = float64(fromHalf(uint16(r.IntN(0x7c00)))) + float64(fromHalf(1))/2*float64(r.IntN(3)-1) // near ties
		case 3:
			v = (r.Float64() - 0.5) * 2e5
		}
		h, clamped := toHalf(v)
		got := float64(fromHalf(h))
		if math.Abs(v) > MaxHalf+16 { // beyond the rounding range of the largest half
			if !clamped || math.Abs(got) != MaxHalf {
				t.Fatalf("%v: %v, want clamped to %v", v, got, MaxHalf)
			}
			continue
		}
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7c00 == 0x7c00 || (h&0x7fff == 0 && nb&0x7fff == 0x7fff) {
				continue
			}
			o := float64(fromHalf(nb))
			d, od := math.Abs(v-got), math.Abs(v-o)
			if od < d || (od == d && h&1 == 1) {
				t.Fatalf("%v: got %v (%#04x), but %v (%#04x) is nearer or the even tie", v, got, h, o, nb)
			}
		}
	}
}

// TestToHalf_MatchesNumpy converts values with numpy's astype(np.float16) when /usr/bin/python3 has numpy.
func TestToHalf_MatchesNumpy(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := exec.Command(py, "-c", "import numpy").Output(); err != nil {
		t.Skip("numpy not available")
	}
	r := rand.New(rand.NewPCG(5, 6))
	var vals []string
	var fs []float32
	for range 5000 {
		f := float32(math.Ldexp(r.Float64()*2-1, r.IntN(40)-28))
		fs = append(fs, f)
		vals = append(vals, strconv.FormatFloat(float64(f), 'g', -1, 32))
	}
	cmd := exec.Command(py, "-c", "import sys,numpy as np; a=np.array(sys.stdin.read().split(),dtype=np.float32)\nwith np.errstate(over='ignore'): b=a.astype(np.float16)\nprint(' '.join(str(int(x)) for x in b.view(np.uint16)))")
	cmd.Stdin = strings.NewReader(strings.Join(vals, " "))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range strings.Fields(string(out)) {
		want, _ := strconv.Atoi(s)
		got, clamped := toHalf(float64(fs[i]))
		if clamped {
			continue // numpy gives inf there; we clamp on purpose
		}
		if got != uint16(want) {
			t.Errorf("%v: %#04x, numpy %#04x", fs[i], got, want)
		}
	}
}

// TestWriteTIFF16_ReadBack: the written file decodes to the float16 roundings of the map, float32 and
// float64. mapio reads float32 and float64 TIFF only, so the package's own reader reads it back; numpy
// reads the strip at the offset the IFD gives, when available.
func TestWriteTIFF16_ReadBack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	w, h := 7, 5
	m := make([]float32, w*h)
	m64 := make([]float64, w*h)
	for i := range m {
		m[i] = r.Float32()*2 - 0.5
		m64[i] = r.Float64() * 3
	}
	for _, c := range []struct {
		d32 []float32
		d64 []float64
	}{{m, nil}, {nil, m64}} {
		var buf bytes.Buffer
		if _, err := WriteTIFF16(&buf, w, h, c.d32, c.d64); err != nil {
			t.Fatal(err)
		}
		info, vals, err := ReadTIFF16(buf.Bytes())
		if err != nil || !info.Float16() || info.W != w || info.H != h {
			t.Fatalf("read back: %+v %v", info, err)
		}
		for i, v := range vals {
			var src float64
			if c.d64 != nil {
				src = c.d64[i]
			} else {
				src = float64(c.d32[i])
			}
			hv, _ := toHalf(src)
			if v != fromHalf(hv) {
				t.Fatalf("value %d: %v, want %v", i, v, fromHalf(hv))
			}
		}
	}
	if _, err := exec.Command("/usr/bin/python3", "-c", "import numpy").Output(); err == nil {
		var buf bytes.Buffer
		WriteTIFF16(&buf, w, h, m, nil)
		p := path.Join(t.TempDir(), "m.tiff")
		os.WriteFile(p, buf.Bytes(), 0o644)
		off := binary.LittleEndian.Uint32(buf.Bytes()[10+12*5+8:]) // StripOffsets
		out, err := exec.Command("/usr/bin/python3", "-c", fmt.Sprintf("import numpy as np; d=open(%q,'rb').read(); a=np.frombuffer(d[%d:],dtype='<f2').reshape(%d,%d); print(repr(float(a[2,3])))", p, off, h, w)).Output()
		if err != nil {
			t.Fatal(err)
		}
		hv, _ := toHalf(float64(m[2*w+3]))
		if got, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); got != float64(fromHalf(hv)) {
			t.Errorf("numpy reads %v at (3, 2), want %v", got, fromHalf(hv))
		}
	}
}

// deflateTIFF16 builds a big-endian, Deflate-compressed float16 TIFF in two strips with a predictor, as
// tifffile can write it: 2 horizontal differencing, 3 floating-point.
func deflateTIFF16(w, h int, vals []uint16, pred int) []byte {
	be := binary.BigEndian
	var strips [][]byte
	rows := (h + 1) / 2
	for y0 := 0; y0 < h; y0 += rows {
		var raw []byte
		for y := y0; y < min(h, y0+rows); y++ {
			row := make([]byte, 2*w)
			switch pred {
			case 2:
				prev := uint16(0)
				for x := 0; x < w; x++ {
					v := vals[y*w+x]
					be.PutUint16(row[2*x:], v-prev)
					prev = v
				}
			case 3:
				for x := 0; x < w; x++ {
					row[x], row[w+x] = byte(vals[y*w+x]>>8), byte(vals[y*w+x])
				}
				for x := len(row) - 1; x > 0; x-- {
					row[x] -= row[x-1]
				}
			default:
				for x := 0; x < w; x++ {
					be.PutUint16(row[2*x:], vals[y*w+x])
				}
			}
			raw = append(raw, row...)
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(raw)
		zw.Close()
		strips = append(strips, z.Bytes())
	}
	type ent struct {
		tag, typ uint16
		n, val   uint32
	}
	ents := []ent{{256, 3, 1, uint32(w)}, {257, 3, 1, uint32(h)}, {258, 3, 1, 16}, {259, 3, 1, 8}, {262, 3, 1, 1},
		{273, 4, uint32(len(strips)), 0}, {277, 3, 1, 1}, {278, 3, 1, uint32(rows)}, {279, 4, uint32(len(strips)), 0}, {317, 3, 1, uint32(pred)}, {339, 3, 1, 3}}
	ifd := 8
	arr := ifd + 2 + 12*len(ents) + 4
	dataAt := arr + 8*len(strips)
	out := make([]byte, dataAt)
	copy(out, "MM")
	be.PutUint16(out[2:], 42)
	be.PutUint32(out[4:], uint32(ifd))
	be.PutUint16(out[ifd:], uint16(len(ents)))
	var offs []uint32
	pos := dataAt
	for _, s := range strips {
		offs = append(offs, uint32(pos))
		pos += len(s)
	}
	for i, e := range ents {
		o := ifd + 2 + 12*i
		be.PutUint16(out[o:], e.tag)
		be.PutUint16(out[o+2:], e.typ)
		be.PutUint32(out[o+4:], e.n)
		switch {
		case e.tag == 273 || e.tag == 279:
			at := arr
			if e.tag == 279 {
				at += 4 * len(strips)
			}
			be.PutUint32(out[o+8:], uint32(at))
			for j, s := range strips {
				v := offs[j]
				if e.tag == 279 {
					v = uint32(len(s))
				}
				be.PutUint32(out[at+4*j:], v)
			}
		case e.typ == 3:
			be.PutUint16(out[o+8:], uint16(e.val))
		default:
			be.PutUint32(out[o+8:], e.val)
		}
	}
	for _, s := range strips {
		out = append(out, s...)
	}
	return out
}

// TestReadTIFF16_DeflatePredictors reads big-endian Deflate strips with no, horizontal and floating-point
// predictors.
func TestReadTIFF16_DeflatePredictors(t *testing.T) {
	w, h := 5, 3
	vals := make([]uint16, w*h)
	for i := range vals {
		vals[i], _ = toHalf(float64(i)*0.37 - 1)
	}
	for _, pred := range []int{1, 2, 3} {
		info, got, err := ReadTIFF16(deflateTIFF16(w, h, vals, pred))
		if err != nil || !info.Float16() {
			t.Fatalf("predictor %d: %+v %v", pred, info, err)
		}
		for i, v := range got {
			if v != fromHalf(vals[i]) {
				t.Fatalf("predictor %d: value %d is %v, want %v", pred, i, v, fromHalf(vals[i]))
			}
		}
	}
}

// smallExpected is a two-object submission: a has 2 images per split (4x3), b has 1 (2x2).
func smallExpected() Expected {
	return Expected{
		"a": {"test_private": {{"000_regular", 4, 3}, {"001_regular", 4, 3}}, "test_private_mixed": {{"000_mixed", 4, 3}, {"001_mixed", 4, 3}}},
		"b": {"test_private": {{"000_regular", 2, 2}}, "test_private_mixed": {{"000_mixed", 2, 2}}},
	}
}

// entries writes a valid submission of exp into tar entries (name -> content).
func entries(t *testing.T, exp Expected) map[string][]byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "sub")
	if err != nil {
		t.Fatal(err)
	}
	for obj, splits := range exp {
		for sp, items := range splits {
			for _, it := range items {
				m := make([]float32, it.W*it.H)
				for i := range m {
					m[i] = float32(i) / float32(len(m))
				}
				if err := w.Add(obj, sp, it.Stem, it.W, it.H, m, nil, 0.5); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	gz, _ := gzip.NewReader(&buf)
	tr := tar.NewReader(gz)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		b.ReadFrom(tr)
		out[h.Name] = b.Bytes()
	}
	return out
}

func pack(t *testing.T, files map[string][]byte, extra ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	for _, h := range extra {
		tw.WriteHeader(h)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func encodePNG(img image.Image) []byte {
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// TestCheck_ValidAndBroken: a written submission passes; each broken variant fails with the rule it
// breaks named, and a missing thresholded folder is only a warning.
func TestCheck_ValidAndBroken(t *testing.T) {
	exp := smallExpected()
	good := entries(t, exp)
	if len(good) != 12 {
		t.Fatalf("%d files written, want 6 maps and 6 masks", len(good))
	}
	rep := Check(bytes.NewReader(pack(t, good)), exp)
	if !rep.OK() || rep.Root != "sub" || rep.Maps != 6 || rep.Masks != 6 || rep.Objects != 2 || len(rep.Warnings) != 0 {
		t.Fatalf("valid submission: %+v", rep)
	}
	mapA := "sub/anomaly_images/a/test_private/000_regular.tiff"
	maskA := "sub/anomaly_images_thresholded/a/test_private/000_regular.png"
	grey := func(w, h int, v uint8) []byte {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i := range g.Pix {
			g.Pix[i] = v
		}
		return encodePNG(g)
	}
	var f32 bytes.Buffer
	WriteTIFF16(&f32, 4, 3, make([]float32, 12), nil)
	as32 := bytes.Clone(f32.Bytes())
	binary.LittleEndian.PutUint16(as32[10+12*2+8:], 32) // BitsPerSample 32: a float32 map
	var nan bytes.Buffer
	nm := make([]float32, 12)
	nm[5] = float32(math.NaN())
	WriteTIFF16(&nan, 4, 3, nm, nil)
	var small bytes.Buffer
	WriteTIFF16(&small, 3, 3, make([]float32, 9), nil)
	rgb := image.NewRGBA(image.Rect(0, 0, 4, 3))
	pal := image.NewPaletted(image.Rect(0, 0, 4, 3), color.Palette{color.Black, color.White})
	oneBit := grey(4, 3, 0)
	oneBit[24] = 1 // IHDR bit depth 1 (the checker reads the header before decoding)
	cases := []struct {
		name string
		edit func(map[string][]byte)
		want string
	}{
		{"missing map", func(m map[string][]byte) { delete(m, mapA) }, "000_regular.tiff is missing"},
		{"missing mask", func(m map[string][]byte) { delete(m, maskA) }, "000_regular.png is missing"},
		{"extra file", func(m map[string][]byte) { m["sub/anomaly_images/a/test_private/002_regular.tiff"] = good[mapA] }, "superfluous file"},
		{"extra object", func(m map[string][]byte) { m["sub/anomaly_images/c/test_private/000_regular.tiff"] = good[mapA] }, "not an expected object"},
		{"extra split", func(m map[string][]byte) { m["sub/anomaly_images/a/test_public/000_regular.tiff"] = good[mapA] }, "the splits are"},
		{"stray file", func(m map[string][]byte) { m["sub/notes.txt"] = []byte("x") }, "superfluous file sub/notes.txt"},
		{"missing object", func(m map[string][]byte) {
			for k := range m {
				if strings.HasPrefix(k, "sub/anomaly_images/b/") {
					delete(m, k)
				}
			}
		}, "sub/anomaly_images/b is missing"},
		{"float32 map", func(m map[string][]byte) { m[mapA] = as32 }, "want float16"},
		{"png in maps", func(m map[string][]byte) { m["sub/anomaly_images/a/test_private/000_regular.png"] = grey(4, 3, 0) }, "only .tiff"},
		{"NaN map", func(m map[string][]byte) { m[mapA] = nan.Bytes() }, "NaN"},
		{"map size", func(m map[string][]byte) { m[mapA] = small.Bytes() }, "is 3x3, its image is 4x3"},
		{"mask size", func(m map[string][]byte) { m[maskA] = grey(4, 2, 0) }, "is 4x2, its map is 4x3"},
		{"mask value 128", func(m map[string][]byte) { m[maskA] = grey(4, 3, 128) }, "neither 0 nor 255"},
		{"mask rgb", func(m map[string][]byte) { m[maskA] = encodePNG(rgb) }, "colour type"},
		{"mask palette", func(m map[string][]byte) { m[maskA] = encodePNG(pal) }, "colour type 3"},
		{"mask 1 bit", func(m map[string][]byte) { m[maskA] = oneBit }, "1-bit grey"},
		{"two roots", func(m map[string][]byte) { m["other/anomaly_images/a/test_private/000_regular.tiff"] = good[mapA] }, "outside the one top folder"},
	}
	for _, c := range cases {
		files := map[string][]byte{}
		for k, v := range good {
			files[k] = v
		}
		c.edit(files)
		rep := Check(bytes.NewReader(pack(t, files)), exp)
		if rep.OK() || !strings.Contains(strings.Join(rep.Errors, "\n"), c.want) {
			t.Errorf("%s: errors %q, want one with %q", c.name, rep.Errors, c.want)
		}
	}
	// A symlink is refused.
	rep = Check(bytes.NewReader(pack(t, good, &tar.Header{Name: "sub/link", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink})), exp)
	if rep.OK() {
		t.Error("symlink accepted")
	}
	// No thresholded folder: a warning, as officially.
	files := map[string][]byte{}
	for k, v := range good {
		if !strings.Contains(k, MasksDir) {
			files[k] = v
		}
	}
	rep = Check(bytes.NewReader(pack(t, files)), exp)
	if !rep.OK() || len(rep.Warnings) != 1 {
		t.Errorf("without masks: %+v", rep)
	}
	// Not gzip.
	if rep := Check(strings.NewReader("plain text"), exp); rep.OK() {
		t.Error("non-gzip accepted")
	}
}

// TestOfficial_Names: the official list has the eight objects, NNN_regular / NNN_mixed from 000.
func TestOfficial_Names(t *testing.T) {
	e := Official()
	if len(e) != 8 || len(e["can"]["test_private"]) != 321 || e["can"]["test_private"][0].Stem != "000_regular" ||
		e["walnuts"]["test_private_mixed"][227].Stem != "227_mixed" {
		t.Errorf("official list: %d objects, can %d", len(e), len(e["can"]["test_private"]))
	}
}

// TestWriter_PNG_Threshold: the mask is 255 exactly where the map is >= the threshold, float32 and
// float64.
func TestWriter_PNG_Threshold(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, "s")
	w.Add("o", "test_private", "000_regular", 3, 1, []float32{0.2, 0.5, 0.7}, nil, 0.5)
	w.Add("o", "test_private_mixed", "000_mixed", 3, 1, nil, []float64{0.5, 0.49999999999, 1}, 0.5)
	w.Close()
	gz, _ := gzip.NewReader(&buf)
	tr := tar.NewReader(gz)
	want := map[string][]uint8{"s/anomaly_images_thresholded/o/test_private/000_regular.png": {0, 255, 255}, "s/anomaly_images_thresholded/o/test_private_mixed/000_mixed.png": {255, 0, 255}}
	n := 0
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if wv, ok := want[h.Name]; ok {
			img, err := png.Decode(tr)
			if err != nil {
				t.Fatal(err)
			}
			if g := img.(*image.Gray); !bytes.Equal(g.Pix, wv) {
				t.Errorf("%s: %v, want %v", h.Name, g.Pix, wv)
			}
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d masks found", n)
	}
}
