//go:build !js

package server

// Memory probes of issue 12: the server's memory while hostile inputs are requested. Each probe reports
// the peak growth of the Go heap (HeapAlloc sampled every 200µs above its value before the probe), the
// bytes allocated meanwhile (TotalAlloc) and the peak growth of the resident set (VmHWM, reset through
// /proc/self/clear_refs). With RDRE_MEMPROBE_REPORT=1 the probes only report, without asserting: that is
// how the numbers of the code before the fix were taken (the same file in a copy of the tree).

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/shared/protocol"
)

// memUse is what one probe cost.
type memUse struct {
	PeakHeap int64 // peak HeapAlloc above the start
	Alloc    int64 // TotalAlloc during the probe
	PeakRSS  int64 // peak resident set above the start (0 when /proc is not there)
}

func (m memUse) String() string {
	mib := func(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
	return fmt.Sprintf("peak heap +%s, allocated %s, peak RSS +%s", mib(m.PeakHeap), mib(m.Alloc), mib(m.PeakRSS))
}

func procStatusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}

// measure runs f and returns what it cost the process.
func measure(f func()) memUse {
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM to the current RSS
	rss0 := procStatusKiB("VmRSS")
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var peak atomic.Uint64
	peak.Store(m0.HeapAlloc)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	u := memUse{PeakHeap: int64(max(peak.Load(), m1.HeapAlloc) - m0.HeapAlloc), Alloc: int64(m1.TotalAlloc - m0.TotalAlloc)}
	if hwm := procStatusKiB("VmHWM"); hwm > 0 {
		u.PeakRSS = max(0, hwm-rss0)
	}
	return u
}

func reportOnly() bool { return os.Getenv("RDRE_MEMPROBE_REPORT") != "" }

// probeRequests is how many thumbnails and images of each bomb are requested at once (10; another
// number with RDRE_MEMPROBE_N, for measuring code that cannot take 10).
func probeRequests() int {
	if n, err := strconv.Atoi(os.Getenv("RDRE_MEMPROBE_N")); err == nil && n > 0 {
		return n
	}
	return 10
}

// Decode bombs of issue 12 (the shapes of /work/shared/cases/decode-bombs, generated).
func bmpBombFile(w, h int32, pad int) []byte {
	b := make([]byte, 54, 54+pad)
	b[0], b[1] = 'B', 'M'
	binary.LittleEndian.PutUint32(b[10:], 54)
	binary.LittleEndian.PutUint32(b[14:], 40)
	binary.LittleEndian.PutUint32(b[18:], uint32(w))
	binary.LittleEndian.PutUint32(b[22:], uint32(h))
	binary.LittleEndian.PutUint16(b[26:], 1)
	binary.LittleEndian.PutUint16(b[28:], 32)
	return append(b, bytes.Repeat([]byte{'0'}, pad)...)
}

func tiffBombFile(w, h uint32) []byte {
	ents := [][4]uint32{
		{256, 4, 1, w}, {257, 4, 1, h}, {258, 3, 4, 134}, {259, 3, 1, 1}, {262, 3, 1, 2},
		{273, 4, 1, 142}, {277, 3, 1, 4}, {278, 4, 1, h}, {279, 4, 1, 0x80000000}, {338, 3, 1, 2},
	}
	b := []byte{'I', 'I', 42, 0, 8, 0, 0, 0}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(ents)))
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
		b = binary.LittleEndian.AppendUint32(b, e[3])
	}
	b = binary.LittleEndian.AppendUint32(b, 0)
	for range 4 {
		b = binary.LittleEndian.AppendUint16(b, 16)
	}
	return b
}

// decodeBombs are the three files of the issue: the shared ones when mounted, else generated copies.
func decodeBombs(t *testing.T) map[string][]byte {
	out := map[string][]byte{
		"header-only-16384x16384-54B.bmp":         bmpBombFile(16384, 16384, 0),
		"fuzz-crasher-138B.bmp":                   bmpBombFile(3604487, 48, 84),
		"header-only-16384x16384-rgba64-142B.tif": tiffBombFile(16384, 16384),
	}
	for name := range out {
		if b, err := os.ReadFile(filepath.Join("/work/shared/cases/decode-bombs", name)); err == nil {
			out[name] = b
		}
	}
	for name, b := range out {
		if want := name[strings.LastIndex(name, "-")+1 : strings.LastIndex(name, "B.")]; strconv.Itoa(len(b)) != want {
			t.Fatalf("%s is %d bytes", name, len(b))
		}
	}
	return out
}

// bombServer starts a server on a category whose test/good/ holds a real image for each bomb (so the
// index accepts them), then replaces each by its bomb: a file that changed after indexing, or whose header
// lies, reaches the decoders. It returns the image id of each bomb.
func bombServer(t *testing.T) (*Server, string, map[string]string, string) {
	t.Setenv("RDRE_THUMB_CACHE", "off")
	cat := filepath.Join(t.TempDir(), "bombcat")
	write := func(rel string, b []byte) {
		p := filepath.Join(cat, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	encode := func(f func(*bytes.Buffer) error) []byte {
		var buf bytes.Buffer
		if err := f(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	pngb := encode(func(b *bytes.Buffer) error { return png.Encode(b, img) })
	write("train/good/000.png", pngb)
	write("test/good/000.png", pngb)
	ids := map[string]string{}
	files := map[string][]byte{}
	for i, name := range []string{"header-only-16384x16384-54B.bmp", "fuzz-crasher-138B.bmp", "header-only-16384x16384-rgba64-142B.tif"} {
		rel := fmt.Sprintf("test/good/%03d%s", i+1, filepath.Ext(name))
		real := encode(func(b *bytes.Buffer) error { return bmp.Encode(b, img) })
		if filepath.Ext(name) == ".tif" {
			real = encode(func(b *bytes.Buffer) error { return tiff.Encode(b, img, nil) })
		}
		write(rel, real)
		ids[name] = rel
		files[rel] = decodeBombs(t)[name]
	}
	s, err := New(Config{Data: []string{cat}, Workspace: filepath.Join(t.TempDir(), "ws.db")})
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(t, s)
	for rel, b := range files {
		write(rel, b)
	}
	return s, s.DatasetIDs()[0], ids, hs
}

func newHTTPServer(t *testing.T, s *Server) string {
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return hs.URL
}

// TestServer_DecodeBombs_BoundedMemory requests a thumbnail and the image of every decode bomb 10 times
// at once: every reply is 422, and the server's heap grows by a few MiB, not gigabytes.
func TestServer_DecodeBombs_BoundedMemory(t *testing.T) {
	_, dsID, ids, base := bombServer(t)
	client := &http.Client{Timeout: 2 * time.Minute}
	probe := func(names ...string) (memUse, map[int]int) {
		codes := map[int]int{}
		var mu sync.Mutex
		u := measure(func() {
			var wg sync.WaitGroup
			for _, name := range names {
				for range probeRequests() {
					for _, path := range []string{"/api/thumb", "/api/image"} {
						wg.Add(1)
						go func() {
							defer wg.Done()
							code := 0
							resp, err := client.Get(base + path + "?dataset=" + dsID + "&id=" + ids[name])
							if err == nil {
								code = resp.StatusCode
								resp.Body.Close()
							}
							mu.Lock()
							codes[code]++
							mu.Unlock()
						}()
					}
				}
			}
			wg.Wait()
		})
		return u, codes
	}
	names := []string{"header-only-16384x16384-54B.bmp", "fuzz-crasher-138B.bmp", "header-only-16384x16384-rgba64-142B.tif"}
	for _, name := range append(names, "all three") {
		if only := os.Getenv("RDRE_MEMPROBE_ONLY"); only != "" && !strings.Contains(name, only) {
			continue
		}
		set := []string{name}
		if name == "all three" {
			set = names
		}
		u, codes := probe(set...)
		t.Logf("probe %s, %d thumbnails + %d images at once each: %v; replies %v", name, probeRequests(), probeRequests(), u, codes)
		if reportOnly() {
			continue
		}
		if codes[http.StatusUnprocessableEntity] != 2*probeRequests()*len(set) {
			t.Errorf("%s: replies %v, want all %d 422", name, codes, 2*probeRequests()*len(set))
		}
		if u.PeakHeap > 64<<20 || u.Alloc > 64<<20 {
			t.Errorf("%s: %v; want under 64 MiB", name, u)
		}
	}
}

// TestServer_MaskSave_14ByteProbe sends the 14-byte mask payload of issue 12 (a well-formed 16384x16384
// mask of one run) for a 64x48 image: refused as bad input, without decoding it.
func TestServer_MaskSave_14ByteProbe(t *testing.T) {
	_, dsID, _, base := bombServer(t)
	probe := []byte{'R', 1, 0x80, 0x80, 0x01, 0x80, 0x80, 0x01, 1, 0x80, 0x80, 0x80, 0x80, 0x01}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var hello protocol.Envelope
	ws.ReadJSON(&hello)
	var reply protocol.Envelope
	u := measure(func() {
		env, _ := protocol.New("1", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: dsID, Image: "test/good/000.png", Width: 64, Height: 48, RLE: probe})
		ws.WriteJSON(env)
		ws.SetReadDeadline(time.Now().Add(time.Minute))
		ws.ReadJSON(&reply)
	})
	frame, _ := protocol.New("1", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: dsID, Image: "test/good/000.png", Width: 64, Height: 48, RLE: probe})
	t.Logf("probe mask.save with the 14-byte payload (base64 %s, %d-byte frame): %v; reply %s %s", base64.StdEncoding.EncodeToString(probe), len(frame.Payload), u, reply.Type, reply.Payload)
	if reportOnly() {
		return
	}
	if reply.Type != protocol.TypeError || !strings.Contains(string(reply.Payload), protocol.CodeBadInput) {
		t.Errorf("reply %s %s, want a bad_input error", reply.Type, reply.Payload)
	}
	if u.PeakHeap > 16<<20 || u.Alloc > 16<<20 {
		t.Errorf("%v; want under 16 MiB", u)
	}
}

// TestServer_Websocket_CompressedBomb sends a 100 MiB text message that per-message deflate squeezes to
// about 100 KiB on the wire: the server stops reading at MaxFrameBytes of decompressed data and closes
// with 1009.
func TestServer_Websocket_CompressedBomb(t *testing.T) {
	_, _, _, base := bombServer(t)
	d := websocket.Dialer{EnableCompression: true}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var hello protocol.Envelope
	ws.ReadJSON(&hello)
	ws.EnableWriteCompression(true)
	ws.SetCompressionLevel(9)
	var readErr error
	var reply protocol.Envelope
	const total = 100 << 20
	var sent atomic.Int64
	u := measure(func() {
		go func() {
			w, err := ws.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			chunk := bytes.Repeat([]byte{'a'}, 64<<10)
			w.Write([]byte(`{"v":1,"type":"images.list","payload":{"dataset":"`))
			for n := 0; n < total; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return // the server closed
				}
				sent.Add(int64(len(chunk)))
			}
			w.Write([]byte(`"}}`))
			w.Close()
		}()
		ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
		for {
			if readErr = ws.ReadJSON(&reply); readErr != nil || reply.Type == protocol.TypeError {
				return
			}
		}
	})
	t.Logf("probe websocket message of %d MiB compressed on the wire (%d MiB written before the server stopped): %v; read %v, reply %s %.200s", total>>20, sent.Load()>>20, u, readErr, reply.Type, reply.Payload)
	if reportOnly() {
		return
	}
	if !websocket.IsCloseError(readErr, websocket.CloseMessageTooBig) {
		t.Errorf("got %v, want close 1009", readErr)
	}
	if u.PeakHeap > 96<<20 {
		t.Errorf("%v; want under 96 MiB", u)
	}
}

// TestServer_DecodeBombs_SkippedAtIndex: bombs present when the dataset is opened are left out of the
// index with a warning that says why.
func TestServer_DecodeBombs_SkippedAtIndex(t *testing.T) {
	t.Setenv("RDRE_THUMB_CACHE", "off")
	cat := filepath.Join(t.TempDir(), "bombcat")
	os.MkdirAll(filepath.Join(cat, "test", "good"), 0o755)
	os.MkdirAll(filepath.Join(cat, "train", "good"), 0o755)
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)))
	os.WriteFile(filepath.Join(cat, "train", "good", "000.png"), buf.Bytes(), 0o644)
	for name, b := range decodeBombs(t) {
		os.WriteFile(filepath.Join(cat, "test", "good", name), b, 0o644)
	}
	s, err := New(Config{Data: []string{cat}, Workspace: filepath.Join(t.TempDir(), "ws.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ds, _ := s.Dataset(s.DatasetIDs()[0])
	if n := len(ds.Images()); n != 1 {
		t.Fatalf("%d images indexed, want only the real one", n)
	}
	warnings := strings.Join(ds.Info().Warnings, "\n")
	for name := range decodeBombs(t) {
		if !strings.Contains(warnings, name) || !strings.Contains(warnings, "file can hold") {
			t.Errorf("no warning names %s:\n%s", name, warnings)
		}
	}
}

// TestServer_Thumbnails_DecodeBudget requests six thumbnails of 1024x1024 images (a few KiB each, 4 MiB
// decoded) at once under a decode budget of 6 MiB: one is decoded and scaled at a time (two would not
// fit), so the heap holds one image (and what the collector has not reclaimed yet), not the 24 MiB of
// six at once.
func TestServer_Thumbnails_DecodeBudget(t *testing.T) {
	t.Setenv("RDRE_THUMB_CACHE", "off")
	cat := filepath.Join(t.TempDir(), "bigcat")
	os.MkdirAll(filepath.Join(cat, "train", "good"), 0o755)
	os.MkdirAll(filepath.Join(cat, "test", "good"), 0o755)
	var ids []string
	for i := range 3 {
		img := image.NewRGBA(image.Rect(0, 0, 1024, 1024))
		for j := range img.Pix {
			img.Pix[j] = uint8(i * 40)
		}
		var buf bytes.Buffer
		png.Encode(&buf, img)
		rel := fmt.Sprintf("test/good/%03d.png", i)
		os.WriteFile(filepath.Join(cat, filepath.FromSlash(rel)), buf.Bytes(), 0o644)
		ids = append(ids, rel)
	}
	os.WriteFile(filepath.Join(cat, "train", "good", "000.png"), []byte{}, 0o644)
	s, err := New(Config{Data: []string{cat}, Workspace: filepath.Join(t.TempDir(), "ws.db")})
	if err != nil {
		t.Fatal(err)
	}
	base := newHTTPServer(t, s)
	dsID := s.DatasetIDs()[0]
	defer imageio.SetDecodeBudget(0)
	imageio.SetDecodeBudget(6 << 20)
	// Collect garbage early, so that the heap's peak shows what is live rather than when the collector
	// last ran (with GOGC=100 the heap may grow to twice the live set, including the test's own).
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	var codes sync.Map
	u := measure(func() {
		var wg sync.WaitGroup
		for _, id := range ids {
			for _, size := range []int{64, 65} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := http.Get(fmt.Sprintf("%s/api/thumb?dataset=%s&id=%s&size=%d", base, dsID, id, size))
					if err == nil {
						codes.Store(id+strconv.Itoa(size), resp.StatusCode)
						resp.Body.Close()
					}
				}()
			}
		}
		wg.Wait()
	})
	n := 0
	codes.Range(func(k, v any) bool {
		if v != http.StatusOK {
			t.Errorf("%v: HTTP %v", k, v)
		}
		n++
		return true
	})
	b := imageio.DecodeBudget()
	t.Logf("6 thumbnails of 1024x1024 images at once, decode budget %d MiB: %v; budget peak %.1f MiB", b.Size()>>20, u, float64(b.Peak())/(1<<20))
	if n != 6 || b.Peak() > b.Size() || b.InUse() != 0 {
		t.Errorf("%d replies, budget peak %d of %d, %d still reserved", n, b.Peak(), b.Size(), b.InUse())
	}
	// Six images decoded at once would hold 24 MiB; the heap's peak also counts images released while a
	// collection was running (a cycle can span several 30 ms decodes), so allow a few of those.
	if u.PeakHeap > 20<<20 {
		t.Errorf("%v: as if the images were decoded at once", u)
	}
}
