//go:build !js

package dataset

import (
	"bytes"
	"image"
	"image/jpeg"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testThumbDir is where the tests of this package keep their thumbnails, not in the user's cache.
var testThumbDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rdre-thumbs-test-")
	if err != nil {
		panic(err)
	}
	testThumbDir = dir
	SetThumbCache(dir, 0)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// useThumbCache points the disk cache at a fresh folder for one test.
func useThumbCache(t *testing.T, limit int64) string {
	t.Helper()
	dir := t.TempDir()
	SetThumbCache(dir, limit)
	t.Cleanup(func() { SetThumbCache(testThumbDir, 0) })
	if got := ThumbCacheDir(); got != dir {
		t.Fatalf("ThumbCacheDir() = %q, want %q", got, dir)
	}
	return dir
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func gradient(x, y int) uint8 { return uint8(x + 2*y) }

func oneImage(t *testing.T) (root, id string) {
	t.Helper()
	root = t.TempDir()
	id = "test/good/000.png"
	writePNG(t, filepath.Join(root, id), 300, 200, gradient)
	return root, id
}

func thumbnailOf(t *testing.T, root, id string, size int) []byte {
	t.Helper()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := d.Thumbnail(id, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A thumbnail made by one Dataset is read from disk by the next one (a server restart), not made again.
func TestThumbnail_DiskCache_HitAfterRestart(t *testing.T) {
	dir := useThumbCache(t, 0)
	root, id := oneImage(t)
	first := thumbnailOf(t, root, id, 100)
	files := cacheFiles(t, dir)
	if len(files) != 1 || !strings.HasSuffix(files[0], thumbExt) {
		t.Fatalf("cache folder holds %v, want one entry", files)
	}
	// Put a different, valid JPEG in the entry: a new Dataset must serve it, which proves it read the
	// disk instead of decoding the image again.
	marker := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 7, 5)))
	if err := os.WriteFile(files[0], wrapThumb(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := thumbnailOf(t, root, id, 100); !bytes.Equal(got, marker) {
		t.Fatalf("new Dataset did not serve the disk entry (%d bytes, first %d, marker %d)", len(got), len(first), len(marker))
	}
	// Another size is another entry.
	thumbnailOf(t, root, id, 64)
	if n := len(cacheFiles(t, dir)); n != 2 {
		t.Fatalf("%d entries after a second size, want 2", n)
	}
}

// A changed source file (size or modification time) gets a new thumbnail, from a new Dataset and from
// the one that already holds the old thumbnail in memory.
func TestThumbnail_DiskCache_SourceChanged(t *testing.T) {
	dir := useThumbCache(t, 0)
	root, id := oneImage(t)
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	old, err := d.Thumbnail(id, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Same size of file, other pixels, other modification time.
	writePNG(t, filepath.Join(root, id), 300, 200, func(x, y int) uint8 { return 255 - gradient(x, y) })
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(root, id), later, later); err != nil {
		t.Fatal(err)
	}
	SetThumbCache("off", 0)
	want := thumbnailOf(t, root, id, 100) // made from the new file, no cache involved
	SetThumbCache(dir, 0)
	if bytes.Equal(old, want) {
		t.Fatal("test images give the same thumbnail")
	}
	if got := thumbnailOf(t, root, id, 100); !bytes.Equal(got, want) {
		t.Error("new Dataset served the thumbnail of the old file")
	}
	if got, err := d.Thumbnail(id, 100); err != nil || !bytes.Equal(got, want) {
		t.Errorf("open Dataset served the thumbnail of the old file (err %v)", err)
	}
}

// A damaged entry (flipped byte, truncated, not ours) is made again and rewritten, never served.
func TestThumbnail_DiskCache_CorruptEntryRemade(t *testing.T) {
	dir := useThumbCache(t, 0)
	root, id := oneImage(t)
	want := thumbnailOf(t, root, id, 100)
	entry := cacheFiles(t, dir)[0]
	good, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	for name, raw := range map[string][]byte{
		"flipped byte": flipped,
		"truncated":    good[:len(good)-100],
		"header only":  good[:thumbHeader],
		"empty":        nil,
		"bare jpeg":    good[thumbHeader:],
	} {
		if err := os.WriteFile(entry, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		got := thumbnailOf(t, root, id, 100)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: served %d bytes that are not the thumbnail", name, len(got))
		}
		if _, err := jpeg.Decode(bytes.NewReader(got)); err != nil {
			t.Errorf("%s: served a broken JPEG: %v", name, err)
		}
		if now, err := os.ReadFile(entry); err != nil || !bytes.Equal(now, good) {
			t.Errorf("%s: entry was not rewritten (err %v)", name, err)
		}
	}
}

// The folder never grows past its cap: the least recently used entries go first.
func TestThumbnail_DiskCache_Capped(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"000", "001", "002", "003", "004", "005", "006", "007"} {
		writePNG(t, filepath.Join(root, "test/good/"+n+".png"), 120, 90, gradient)
	}
	// Measure one entry, then allow about three.
	probe := useThumbCache(t, 0)
	thumbnailOf(t, root, "test/good/000.png", 64)
	st, err := os.Stat(cacheFiles(t, probe)[0])
	if err != nil {
		t.Fatal(err)
	}
	limit := 3*st.Size() + st.Size()/2
	dir := useThumbCache(t, limit)
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	past := time.Now().Add(-time.Hour)
	for i, im := range d.Images() {
		if _, err := d.Thumbnail(im.ID, 64); err != nil {
			t.Fatal(err)
		}
		// Entries written in the same instant would tie; age each one a little less than the next.
		for _, f := range cacheFiles(t, dir) {
			if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) < time.Minute {
				mt := past.Add(time.Duration(i) * time.Second)
				os.Chtimes(f, mt, mt)
			}
		}
		var total int64
		for _, f := range cacheFiles(t, dir) {
			st, _ := os.Stat(f)
			total += st.Size()
		}
		if total > limit {
			t.Fatalf("after %d thumbnails the cache holds %d bytes, cap %d", i+1, total, limit)
		}
	}
	if n := len(cacheFiles(t, dir)); n < 2 || n > 3 {
		t.Errorf("cache holds %d entries, want 2 or 3", n)
	}
	// The newest one survived.
	last := d.Images()[len(d.Images())-1]
	st2, _ := d.root.Stat(filepath.FromSlash(last.ID))
	if _, err := os.Stat(diskThumbs().path(thumbKey(d.info.ID, last.ID, 64, st2))); err != nil {
		t.Errorf("newest thumbnail evicted: %v", err)
	}
}

// "off" keeps nothing on disk; an unusable folder costs the cache, not the thumbnail.
func TestThumbnail_DiskCache_OffAndUnusable(t *testing.T) {
	root, id := oneImage(t)
	SetThumbCache("off", 0)
	t.Cleanup(func() { SetThumbCache(testThumbDir, 0) })
	if ThumbCacheDir() != "" {
		t.Error("off: a cache folder is still in use")
	}
	thumbnailOf(t, root, id, 100)

	file := filepath.Join(t.TempDir(), "a-file")
	writeFile(t, file, []byte("x"))
	SetThumbCache(filepath.Join(file, "thumbs"), 0)
	if b := thumbnailOf(t, root, id, 100); len(b) == 0 {
		t.Error("no thumbnail with an unusable cache folder")
	}
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
