//go:build !js

package imageio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/rdre-studio/studio/internal/testalloc"
)

// DecodeBombsDir holds the decode bombs of issue 12 when the shared cases are mounted.
const DecodeBombsDir = "/work/shared/cases/decode-bombs"

// BMPBomb is a 54-byte BMP header declaring a w x h 32-bit image with no pixel data (the shape of
// header-only-16384x16384-54B.bmp), followed by pad bytes of '0' (the shape of fuzz-crasher-138B.bmp).
func BMPBomb(w, h int32, pad int) []byte {
	b := make([]byte, 54, 54+pad)
	b[0], b[1] = 'B', 'M'
	binary.LittleEndian.PutUint32(b[10:], 54) // pixel data offset
	binary.LittleEndian.PutUint32(b[14:], 40) // BITMAPINFOHEADER
	binary.LittleEndian.PutUint32(b[18:], uint32(w))
	binary.LittleEndian.PutUint32(b[22:], uint32(h))
	binary.LittleEndian.PutUint16(b[26:], 1)  // planes
	binary.LittleEndian.PutUint16(b[28:], 32) // bits per pixel
	return append(b, bytes.Repeat([]byte{'0'}, pad)...)
}

// TIFFBomb is a 142-byte little-endian TIFF declaring a w x h RGBA image of 16-bit samples (8 bytes per
// pixel) whose one strip claims 2 GiB at the end of the file (the shape of
// header-only-16384x16384-rgba64-142B.tif).
func TIFFBomb(w, h uint32) []byte {
	type ent struct {
		tag, typ uint16
		count    uint32
		val      uint32
	}
	ents := []ent{
		{256, 4, 1, w},          // ImageWidth
		{257, 4, 1, h},          // ImageLength
		{258, 3, 4, 134},        // BitsPerSample: 4 SHORTs at 134
		{259, 3, 1, 1},          // Compression: none
		{262, 3, 1, 2},          // Photometric: RGB
		{273, 4, 1, 142},        // StripOffsets: the end of the file
		{277, 3, 1, 4},          // SamplesPerPixel
		{278, 4, 1, h},          // RowsPerStrip
		{279, 4, 1, 0x80000000}, // StripByteCounts: 2 GiB
		{338, 3, 1, 2},          // ExtraSamples: unassociated alpha
	}
	b := []byte{'I', 'I', 42, 0, 8, 0, 0, 0}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(ents)))
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.typ)
		b = binary.LittleEndian.AppendUint32(b, e.count)
		b = binary.LittleEndian.AppendUint32(b, e.val)
	}
	b = binary.LittleEndian.AppendUint32(b, 0) // no next IFD
	for range 4 {
		b = binary.LittleEndian.AppendUint16(b, 16)
	}
	return b
}

// bombs returns the decode bombs: generated ones, and the shared files when present.
func bombs(t testing.TB) map[string][]byte {
	out := map[string][]byte{
		"bmp 16384x16384 54B":          BMPBomb(16384, 16384, 0),
		"bmp 3604487x48 138B":          BMPBomb(3604487, 48, 84),
		"tiff 16384x16384 rgba64 142B": TIFFBomb(16384, 16384),
		// A PNG that declares 16384x16384 RGBA with a few bytes of IDAT.
		"png 16384x16384": pngHeaderOnly(16384, 16384, 6),
		// A progressive JPEG that declares 16384x16384 grey and stops after its scan header.
		"jpeg 16384x16384 progressive": jpegHeaderOnly(16384, 16384, true),
	}
	files, _ := filepath.Glob(filepath.Join(DecodeBombsDir, "*"))
	for _, f := range files {
		if filepath.Ext(f) == ".md" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out["shared "+filepath.Base(f)] = b
	}
	return out
}

func pngHeaderOnly(w, h uint32, ct byte) []byte {
	var buf bytes.Buffer
	img := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	png.Encode(&buf, img)
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	b[25] = ct
	return b // the CRC of IHDR is now wrong: Go's decoder checks it only after reading the chunk
}

func jpegHeaderOnly(w, h uint16, progressive bool) []byte {
	var buf bytes.Buffer
	jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil)
	b := buf.Bytes()
	// Find SOF0 and patch its size (and make it SOF2).
	for i := 2; i+9 < len(b); i++ {
		if b[i] == 0xff && b[i+1] == 0xc0 {
			if progressive {
				b[i+1] = 0xc2
			}
			binary.BigEndian.PutUint16(b[i+5:], h)
			binary.BigEndian.PutUint16(b[i+7:], w)
			break
		}
	}
	// Cut after the SOS header.
	for i := 2; i+3 < len(b); i++ {
		if b[i] == 0xff && b[i+1] == 0xda {
			n := int(binary.BigEndian.Uint16(b[i+2:]))
			return b[:i+2+n]
		}
	}
	return b
}

func TestDecode_Bombs(t *testing.T) {
	for name, b := range bombs(t) {
		var err error
		n := testalloc.Bytes(func() { _, _, err = Decode(bytes.NewReader(b)) })
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", name, err)
		}
		if n > 1<<20 {
			t.Errorf("%s (%d bytes): decoding allocated %d bytes before failing (%v)", name, len(b), n, err)
		}
		var cerr error
		n = testalloc.Bytes(func() { _, _, cerr = DecodeConfig(bytes.NewReader(b)) })
		if cerr == nil && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: DecodeConfig accepted a file Decode refuses for another reason than its size: %v", name, err)
		}
		if n > 1<<20 {
			t.Errorf("%s: DecodeConfig allocated %d bytes", name, n)
		}
		t.Logf("%s: %v (%d bytes allocated)", name, err, n)
	}
	// The three files of the issue are refused for their size.
	for _, name := range []string{"bmp 16384x16384 54B", "bmp 3604487x48 138B", "tiff 16384x16384 rgba64 142B", "png 16384x16384", "jpeg 16384x16384 progressive"} {
		if _, _, err := Decode(bytes.NewReader(bombs(t)[name])); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want ErrTooLarge", name, err)
		}
	}
}

// TestDecode_BombFiles decodes the bombs from files, the way the dataset reads them.
func TestDecode_BombFiles(t *testing.T) {
	dir := t.TempDir()
	for name, b := range bombs(t) {
		p := filepath.Join(dir, "bomb")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		n := testalloc.Bytes(func() { _, _, err = Decode(f) })
		f.Close()
		if !errors.Is(err, ErrUnsupported) || n > 1<<20 {
			t.Errorf("%s: %v after allocating %d bytes", name, err, n)
		}
	}
}

type sample struct {
	name string
	data []byte
}

func noise(w, h int, seed int64) *image.NRGBA {
	rng := rand.New(rand.NewSource(seed))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng.Read(img.Pix)
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	return img
}

func enc(t testing.TB, f func(*bytes.Buffer) error) []byte {
	var buf bytes.Buffer
	if err := f(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// samples are real images of every format and pixel type the decoders return.
func samples(t testing.TB, w, h int) []sample {
	rgb := noise(w, h, 1)
	gray := image.NewGray(rgb.Rect)
	for i := range gray.Pix {
		gray.Pix[i] = rgb.Pix[4*i]
	}
	g16 := image.NewGray16(rgb.Rect)
	for i := range gray.Pix {
		g16.Pix[2*i], g16.Pix[2*i+1] = rgb.Pix[4*i], rgb.Pix[4*i+1]
	}
	n64 := image.NewNRGBA64(rgb.Rect)
	for i := range rgb.Pix {
		n64.Pix[2*i] = rgb.Pix[i]
	}
	pal := image.NewPaletted(rgb.Rect, color.Palette{color.Black, color.White})
	for i := range pal.Pix {
		pal.Pix[i] = rgb.Pix[4*i] & 1
	}
	alpha := image.NewNRGBA(rgb.Rect)
	copy(alpha.Pix, rgb.Pix)
	for i := 3; i < len(alpha.Pix); i += 4 {
		alpha.Pix[i] = uint8(i)
	}
	var out []sample
	add := func(name string, b []byte) { out = append(out, sample{name, b}) }
	for name, img := range map[string]image.Image{"rgb": rgb, "rgba": alpha, "gray": gray, "gray16": g16, "nrgba64": n64, "1bit": pal} {
		add("png "+name, enc(t, func(b *bytes.Buffer) error { return png.Encode(b, img) }))
		add("tiff "+name, enc(t, func(b *bytes.Buffer) error { return tiff.Encode(b, img, nil) }))
		add("tiff deflate "+name, enc(t, func(b *bytes.Buffer) error {
			return tiff.Encode(b, img, &tiff.Options{Compression: tiff.Deflate, Predictor: true})
		}))
		if name != "gray16" && name != "nrgba64" {
			add("bmp "+name, enc(t, func(b *bytes.Buffer) error { return bmp.Encode(b, img) }))
		}
	}
	add("jpeg rgb", enc(t, func(b *bytes.Buffer) error { return jpeg.Encode(b, rgb, nil) }))
	add("jpeg gray", enc(t, func(b *bytes.Buffer) error { return jpeg.Encode(b, gray, nil) }))
	// Blank images compress best: a 1-bit mask and an RGB image of one colour.
	blank := image.NewPaletted(rgb.Rect, color.Palette{color.Black, color.White})
	add("png blank 1bit", enc(t, func(b *bytes.Buffer) error { return png.Encode(b, blank) }))
	add("png blank rgb", enc(t, func(b *bytes.Buffer) error { return png.Encode(b, image.NewRGBA(rgb.Rect)) }))
	add("jpeg blank", enc(t, func(b *bytes.Buffer) error { return jpeg.Encode(b, image.NewRGBA(rgb.Rect), nil) }))
	add("tiff deflate blank", enc(t, func(b *bytes.Buffer) error {
		return tiff.Encode(b, image.NewRGBA(rgb.Rect), &tiff.Options{Compression: tiff.Deflate})
	}))
	return out
}

// TestDecode_CostBoundsAllocation decodes real images of every kind: each decodes, what decoding
// allocates stays within the estimate inspect reserves, and the estimate is not wildly above it.
func TestDecode_CostBoundsAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocations")
	}
	for _, s := range samples(t, 900, 900) {
		p, err := inspect(sizedSource{bytes.NewReader(s.data), int64(len(s.data))})
		if err != nil {
			t.Errorf("%s (%d bytes): %v", s.name, len(s.data), err)
			continue
		}
		var img image.Image
		n := int64(testalloc.Bytes(func() { img, _, err = Decode(bytes.NewReader(s.data)) }))
		if err != nil || img.Bounds().Dx() != 900 || img.Bounds().Dy() != 900 {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if n > p.cost+p.garbage {
			t.Errorf("%s: decoding allocated %d bytes, more than the %d reserved", s.name, n, p.cost)
		}
		// A compressed TIFF block may decompress to 8 bytes a pixel whatever its type (the decoder's bound,
		// which the estimate must follow): grey TIFFs are overestimated most.
		over := int64(4)
		if strings.HasPrefix(s.name, "tiff deflate") {
			over = 10
		}
		if p.cost > over*n+decoderOverhead {
			t.Errorf("%s: reserved %d bytes for a decode that allocated %d", s.name, p.cost, n)
		}
		t.Logf("%-22s %8d bytes  allocated %9d  reserved %9d", s.name, len(s.data), n, p.cost)
	}
}

// TestDecode_LargeBlankImages: the most compressible real images still decode (up to MaxExpansion).
func TestDecode_LargeBlankImages(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("decodes 64 MiB images")
	}
	for _, tc := range []struct {
		name string
		img  image.Image
	}{
		{"1-bit 4096x4096 mask", image.NewPaletted(image.Rect(0, 0, 4096, 4096), color.Palette{color.Black, color.White})},
		{"grey 8192x4096 mask", image.NewGray(image.Rect(0, 0, 8192, 4096))},
		{"rgb 4096x4096", image.NewRGBA(image.Rect(0, 0, 4096, 4096))},
	} {
		b := enc(t, func(buf *bytes.Buffer) error { return png.Encode(buf, tc.img) })
		if _, _, err := Decode(bytes.NewReader(b)); err != nil {
			t.Errorf("%s (%d bytes): %v", tc.name, len(b), err)
		}
	}
}

func TestDecodeConfig_Sizes(t *testing.T) {
	for _, s := range samples(t, 33, 17) {
		cfg, _, err := DecodeConfig(bytes.NewReader(s.data))
		if err != nil || cfg.Width != 33 || cfg.Height != 17 {
			t.Errorf("%s: %dx%d, %v", s.name, cfg.Width, cfg.Height, err)
		}
		// Through a reader without a size: the header alone.
		cfg, _, err = DecodeConfig(struct{ *bytes.Reader }{bytes.NewReader(s.data)})
		if err != nil || cfg.Width != 33 {
			t.Errorf("%s (stream): %dx%d, %v", s.name, cfg.Width, cfg.Height, err)
		}
	}
}

func TestDecode_Truncated(t *testing.T) {
	// Real files cut short: refused, and cheaply when the cut leaves too little for the declared pixels.
	side := 300
	if raceEnabled {
		side = 64
	}
	for _, s := range samples(t, side, side) {
		for _, keep := range []int{len(s.data) / 64, len(s.data) / 2, len(s.data) - 1} {
			var err error
			n := testalloc.Bytes(func() { _, _, err = Decode(bytes.NewReader(s.data[:keep])) })
			if err == nil && keep < len(s.data)/2 {
				t.Errorf("%s cut to %d of %d bytes: decoded", s.name, keep, len(s.data))
			}
			if limit := uint64(MaxExpansion*keep + ExpansionSlack); n > limit {
				t.Errorf("%s cut to %d bytes: allocated %d", s.name, keep, n)
			}
		}
	}
}

func TestByteBudget(t *testing.T) {
	b := NewByteBudget(100)
	if _, err := b.Acquire(context.Background(), 101); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("over the whole budget: %v", err)
	}
	r1, err := b.Acquire(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	// 50 does not fit: it waits; a later 10 that would fit waits behind it (first come, first served).
	// Both are served once the 60 is back.
	got := make(chan string, 2)
	go func() {
		r, _ := b.Acquire(context.Background(), 50)
		r() // before the send, so that the budget is back when the test reads it
		got <- "50"
	}()
	for b.waitersLen() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() {
		r, _ := b.Acquire(context.Background(), 10)
		r() // before the send, so that the budget is back when the test reads it
		got <- "10"
	}()
	for b.waitersLen() < 2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if _, err := b.Acquire(ctx, 40); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled wait: %v", err)
	}
	cancel()
	select {
	case g := <-got:
		t.Fatalf("%s acquired while 60 of 100 were held", g)
	default:
	}
	r1()
	r1() // twice is harmless
	<-got
	<-got
	if b.InUse() != 0 || b.Peak() != 60 {
		t.Fatalf("in use %d, peak %d; want 0 and 60", b.InUse(), b.Peak())
	}
}

func (b *ByteBudget) waitersLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// TestDecode_BudgetBoundsConcurrentDecodes decodes 16 images at once under a budget that holds two of
// them: the reservations never exceed it, and everything decodes.
func TestDecode_BudgetBoundsConcurrentDecodes(t *testing.T) {
	data := enc(t, func(b *bytes.Buffer) error { return png.Encode(b, noise(512, 512, 2)) })
	p, err := inspect(sizedSource{bytes.NewReader(data), int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	defer SetDecodeBudget(0)
	SetDecodeBudget(2*p.cost + p.cost/2)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, release, err := DecodeHeld(bytes.NewReader(data))
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(5 * time.Millisecond) // hold the image a while, as a thumbnail does
			release()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if peak := DecodeBudget().Peak(); peak > DecodeBudget().Size() || peak < p.cost {
		t.Fatalf("peak reservation %d, budget %d, one decode %d", peak, DecodeBudget().Size(), p.cost)
	}
	if DecodeBudget().InUse() != 0 {
		t.Fatalf("%d bytes still reserved", DecodeBudget().InUse())
	}
}

func TestDecode_OverBudget(t *testing.T) {
	defer SetDecodeBudget(0)
	SetDecodeBudget(1 << 20)
	data := enc(t, func(b *bytes.Buffer) error { return png.Encode(b, noise(600, 600, 3)) })
	_, _, err := Decode(bytes.NewReader(data))
	if !errors.Is(err, ErrOverBudget) {
		t.Fatalf("got %v, want ErrOverBudget", err)
	}
	t.Log(err)
}

func TestDefaultDecodeBudget(t *testing.T) {
	for _, c := range []struct{ mem, want int64 }{{0, 1 << 30}, {512 << 20, 256 << 20}, {4 << 30, 1 << 30}, {64 << 30, 2 << 30}} {
		if got := DefaultDecodeBudget(c.mem); got != c.want {
			t.Errorf("memory %d: budget %d, want %d", c.mem, got, c.want)
		}
	}
	for s, want := range map[string]int64{"1GiB": 1 << 30, "512 MiB": 512 << 20, "2g": 2 << 30, "1000": 1000, "64k": 64 << 10} {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	if _, err := ParseBytes("lots"); err == nil {
		t.Error("ParseBytes accepted lots")
	}
}

// FuzzDecode decodes arbitrary bytes. Besides not panicking, no input may allocate more than the decode
// reserved for it (plus a small allowance), nor reserve more than MaxExpansion times its size plus
// ExpansionSlack.
func FuzzDecode(f *testing.F) {
	for _, s := range samples(f, 12, 9) {
		f.Add(s.data)
	}
	for _, b := range bombs(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := sizedSource{bytes.NewReader(data), int64(len(data))}
		var p plan
		var perr, err error
		n := int64(testalloc.Bytes(func() {
			p, perr = inspect(src)
			_, _, err = Decode(bytes.NewReader(data))
		}))
		if perr == nil && p.cost > MaxExpansion*int64(len(data))+ExpansionSlack {
			t.Fatalf("%v of %d bytes reserves %d bytes", p, len(data), p.cost)
		}
		limit := 2*int64(len(data)) + 1<<20 // inspect's reads
		if perr == nil {
			limit += p.cost + p.garbage
		}
		if n > limit {
			t.Fatalf("%v of %d bytes (reserved %d, inspect err %v, decode err %v) allocated %d bytes", p, len(data), p.cost, perr, err, n)
		}
	})
}

// testdataDirs are the image test files of Go's own decoders and of golang.org/x/image when they are on
// this machine: progressive, restart-marker, CMYK and RGB JPEGs, PngSuite (interlaced, every depth and
// colour type, tRNS), and TIFFs of every compression, tiled and striped.
func testdataDirs() []string {
	root := runtime.GOROOT()
	dirs := []string{filepath.Join(root, "src", "image", "testdata"), filepath.Join(root, "src", "image", "png", "testdata", "pngsuite")}
	mods := os.Getenv("GOMODCACHE")
	if mods == "" {
		if home, err := os.UserHomeDir(); err == nil {
			mods = filepath.Join(home, "go", "pkg", "mod")
		}
	}
	if m, _ := filepath.Glob(filepath.Join(mods, "golang.org", "x", "image@*", "testdata")); len(m) > 0 {
		dirs = append(dirs, m[len(m)-1])
	}
	return dirs
}

// TestDecode_GoTestdata: every file that Go's decoders read, Decode reads too, within its estimate; the
// truncated ones fail as they do.
func TestDecode_GoTestdata(t *testing.T) {
	n := 0
	for _, dir := range testdataDirs() {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil || sniff(data) == "" {
				continue
			}
			_, _, stockErr := image.Decode(bytes.NewReader(data))
			var p plan
			var perr, derr error
			var img image.Image
			alloc := int64(testalloc.Bytes(func() {
				p, perr = inspect(sizedSource{bytes.NewReader(data), int64(len(data))})
				img, _, derr = Decode(bytes.NewReader(data))
			}))
			switch {
			case stockErr == nil && derr != nil:
				t.Errorf("%s: Go decodes it, Decode refuses: %v", filepath.Base(f), derr)
			case stockErr != nil && derr == nil:
				t.Errorf("%s: Go refuses it (%v), Decode decodes it", filepath.Base(f), stockErr)
			case derr == nil && alloc > p.cost+p.garbage+int64(len(data)):
				t.Errorf("%s: %v allocated %d bytes, estimate %d + %d", filepath.Base(f), p, alloc, p.cost, p.garbage)
			}
			if derr == nil && (img.Bounds().Dx() != p.cfg.Width || img.Bounds().Dy() != p.cfg.Height) {
				t.Errorf("%s: decoded %v, header %dx%d", filepath.Base(f), img.Bounds(), p.cfg.Width, p.cfg.Height)
			}
			_ = perr
			n++
		}
	}
	if n == 0 {
		t.Skip("no Go testdata on this machine")
	}
	t.Logf("%d files", n)
}
