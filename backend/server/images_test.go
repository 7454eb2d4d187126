//go:build !js

package server

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/internal/testenv"
)

// exifDefect is where the EXIF fixture's yellow defect lies, in stored pixels (as in the shared case).
var exifDefect = image.Rect(20, 50, 61, 71)

// withOrientation inserts an APP1 Exif segment declaring the given orientation right after the SOI of a
// JPEG, as cameras write it (big-endian TIFF, IFD0 with the one SHORT tag).
func withOrientation(jpg []byte, o uint16) []byte {
	tiff := []byte{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, byte(o >> 8), byte(o), 0, 0, 0, 0, 0, 0}
	seg := binary.BigEndian.AppendUint16([]byte{0xFF, 0xE1}, uint16(2+6+len(tiff)))
	seg = append(append(seg, "Exif\x00\x00"...), tiff...)
	out := append(append([]byte{}, jpg[:2]...), seg...)
	return append(out, jpg[2:]...)
}

// writeExifCategory writes category exifcat under dir: a 256x128 test/crack/000.jpg (left half red, right
// half blue, a yellow defect) stored with EXIF Orientation 6, its mask in stored coordinates, and plain
// good images.
func writeExifCategory(t *testing.T, dir string) string {
	t.Helper()
	cat := filepath.Join(dir, "exifcat")
	img := image.NewRGBA(image.Rect(0, 0, 256, 128))
	gt := image.NewGray(img.Rect)
	for y := 0; y < 128; y++ {
		for x := 0; x < 256; x++ {
			c := color.RGBA{200, 30, 30, 255}
			if x >= 128 {
				c = color.RGBA{30, 30, 200, 255}
			}
			if (image.Point{x, y}).In(exifDefect) {
				c = color.RGBA{250, 230, 20, 255}
				gt.SetGray(x, y, color.Gray{255})
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	write := func(rel string, b []byte) {
		p := filepath.Join(cat, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("test/crack/000.jpg", withOrientation(buf.Bytes(), 6))
	write("train/good/000.jpg", buf.Bytes())
	write("test/good/000.jpg", buf.Bytes())
	var mb bytes.Buffer
	if err := png.Encode(&mb, gt); err != nil {
		t.Fatal(err)
	}
	write("ground_truth/crack/000_mask.png", mb.Bytes())
	return cat
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	return resp, body
}

func isYellow(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 > 180 && g>>8 > 160 && b>>8 < 110
}

// checkStoredOrientation serves the category's EXIF-rotated image and checks that what goes to the
// browser is the stored pixels: no rotation declared any more, 256x128, the defect colour under every
// pixel of the ground-truth mask (away from JPEG's blurred edge) and nowhere far from it.
func checkStoredOrientation(t *testing.T, cat string) {
	t.Helper()
	s, err := New(Config{Data: []string{cat}, Workspace: filepath.Join(t.TempDir(), "ws.db")})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	dsID := s.DatasetIDs()[0]
	ds, _ := s.Dataset(dsID)
	id := ""
	for _, im := range ds.Images() {
		if im.MaskID != "" {
			id = im.ID
		}
	}
	if id == "" {
		t.Fatalf("no masked image in %s", cat)
	}
	q := url.Values{"dataset": {dsID}, "id": {id}}.Encode()
	orig, err := os.ReadFile(filepath.Join(cat, filepath.FromSlash(id)))
	if err != nil {
		t.Fatal(err)
	}
	if o, err := imageio.Orientation(bytes.NewReader(orig)); err != nil || o != 6 {
		t.Fatalf("fixture %s: orientation %d, %v; want 6", id, o, err)
	}

	resp, body := get(t, hs.URL+"/api/image?"+q)
	if o, err := imageio.Orientation(bytes.NewReader(body)); err != nil || o != 1 {
		t.Fatalf("served %s declares orientation %d (%v): the browser would rotate it", id, o, err)
	}
	if resp.Header.Get("Content-Type") != "image/jpeg" || len(body) != len(orig) || resp.Header.Get("Content-Length") != strconv.Itoa(len(orig)) {
		t.Errorf("served %s as %s, %d bytes (Content-Length %s); want the JPEG's own %d bytes", id, resp.Header.Get("Content-Type"), len(body), resp.Header.Get("Content-Length"), len(orig))
	}
	img, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("decode served image: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 128 {
		t.Fatalf("served image is %dx%d, want the stored 256x128", b.Dx(), b.Dy())
	}

	_, gtBody := get(t, hs.URL+"/api/gt?"+q)
	gt, err := png.Decode(bytes.NewReader(gtBody))
	if err != nil {
		t.Fatal(err)
	}
	if gt.Bounds() != img.Bounds() {
		t.Fatalf("mask %v, image %v", gt.Bounds(), img.Bounds())
	}
	inMask := func(x, y int) bool { r, _, _, _ := gt.At(x, y).RGBA(); return r > 0x8000 }
	near := func(x, y, d int) (in, out bool) {
		for yy := y - d; yy <= y+d; yy++ {
			for xx := x - d; xx <= x+d; xx++ {
				if inMask(xx, yy) {
					in = true
				} else {
					out = true
				}
			}
		}
		return in, out
	}
	checked := 0
	for y := 0; y < 128; y++ {
		for x := 0; x < 256; x++ {
			in, out := near(x, y, 2)
			switch {
			case in && !out: // well inside the mask
				checked++
				if !isYellow(img.At(x, y)) {
					t.Fatalf("pixel (%d,%d) under the mask is %v, not the yellow defect", x, y, img.At(x, y))
				}
			case out && !in:
				if isYellow(img.At(x, y)) {
					t.Fatalf("pixel (%d,%d) outside the mask is yellow", x, y)
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d mask pixels checked", checked)
	}
}

func TestServer_Image_StoredOrientation(t *testing.T) {
	checkStoredOrientation(t, writeExifCategory(t, t.TempDir()))
}

func TestServer_Image_StoredOrientation_SharedCase(t *testing.T) {
	cat := filepath.Join(testenv.RepoRoot(t), "..", "shared", "cases", "exif-orientation", "exifcat")
	if _, err := os.Stat(cat); err != nil {
		t.Skipf("shared case absent (%v): the generated fixture of TestServer_Image_StoredOrientation covers the rule", err)
	}
	checkStoredOrientation(t, cat)
}
