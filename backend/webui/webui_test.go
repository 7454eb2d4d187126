//go:build !js

package webui

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeWasm is a stand-in payload: the handler never parses app.wasm, it only stores and sends bytes.
var fakeWasm = bytes.Repeat([]byte("\x00asm\x01\x00\x00\x00 wasm module body "), 5000)

func serve(h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandler_Wasm_GzipWhenAccepted(t *testing.T) {
	gz := gzipBytes(t, fakeWasm)
	h := newHandler(gz, "", slog.Default())
	rec := serve(h, http.MethodGet, "/web/app.wasm", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if got := rec.Header().Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", got)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/wasm" {
		t.Fatalf("Content-Type %q", got)
	}
	if !bytes.Equal(rec.Body.Bytes(), gz) {
		t.Fatal("body is not the embedded gzip stream")
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if !bytes.Equal(raw, fakeWasm) {
		t.Fatal("gzip body does not decompress to the wasm")
	}
}

func TestHandler_Wasm_PlainWhenGzipRefused(t *testing.T) {
	h := newHandler(gzipBytes(t, fakeWasm), "", slog.Default())
	for _, ae := range []string{"", "identity", "gzip;q=0", "br"} {
		rec := serve(h, http.MethodGet, "/web/app.wasm", map[string]string{"Accept-Encoding": ae})
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Encoding") != "" {
			t.Fatalf("Accept-Encoding %q: status %d, Content-Encoding %q", ae, rec.Code, rec.Header().Get("Content-Encoding"))
		}
		if !bytes.Equal(rec.Body.Bytes(), fakeWasm) {
			t.Fatalf("Accept-Encoding %q: body is not the decompressed wasm", ae)
		}
		if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len(fakeWasm)) {
			t.Fatalf("Content-Length %q, want %d", got, len(fakeWasm))
		}
	}
}

func TestHandler_Wasm_MissingAnswers503(t *testing.T) {
	h := newHandler(nil, "", slog.Default())
	rec := serve(h, http.MethodGet, "/web/app.wasm", nil)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "app.wasm not built: run make build") {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
	// Pages still render without the wasm.
	if rec := serve(h, http.MethodGet, "/", nil); rec.Code != http.StatusOK {
		t.Fatalf("page without wasm: status %d", rec.Code)
	}
}

func TestHandler_Page_RendersLocalResourcesOnly(t *testing.T) {
	h := newHandler(gzipBytes(t, fakeWasm), "v-test", slog.Default())
	for _, path := range []string{"/", "/dataset?id=x", "/image?dataset=x&id=a/b.png"} {
		rec := serve(h, http.MethodGet, path, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d", path, rec.Code)
		}
		body := rec.Body.String()
		if !strings.Contains(body, "/web/studio.css") || !strings.Contains(body, "RD-RE Studio") {
			t.Fatalf("%s: page lacks the style sheet or the title", path)
		}
		for _, ext := range []string{"src=\"http", "href=\"http", "raw.githubusercontent"} {
			if strings.Contains(body, ext) {
				t.Fatalf("%s: page refers to an external host (%s)", path, ext)
			}
		}
	}
	if rec := serve(h, http.MethodGet, "/no-such-page", nil); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown page: status %d, want 404", rec.Code)
	}
}

func TestHandler_Static_ServesAssets(t *testing.T) {
	h := newHandler(nil, "", slog.Default())
	for path, ctype := range map[string]string{"/web/studio.css": "text/css", "/web/icon.svg": "image/svg+xml", "/web/icon-192.png": "image/png"} {
		rec := serve(h, http.MethodGet, path, nil)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) || rec.Body.Len() == 0 {
			t.Fatalf("%s: status %d type %q len %d", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
	}
	if rec := serve(h, http.MethodGet, "/web/../webui.go", nil); rec.Code == http.StatusOK {
		t.Fatal("a path out of the assets was served")
	}
	rec := serve(h, http.MethodGet, "/manifest.webmanifest", nil)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "http") {
		t.Fatalf("manifest: status %d body %s", rec.Code, rec.Body.String())
	}
}

func TestHandler_Version_FollowsWasm(t *testing.T) {
	a := serve(newHandler(gzipBytes(t, []byte("one")), "", slog.Default()), http.MethodGet, "/", nil).Header().Get("ETag")
	b := serve(newHandler(gzipBytes(t, []byte("two")), "", slog.Default()), http.MethodGet, "/", nil).Header().Get("ETag")
	if a == "" || a == b {
		t.Fatalf("ETags %q and %q: a new wasm must change the app version", a, b)
	}
}

func TestAcceptsGzip_Headers(t *testing.T) {
	for h, want := range map[string]bool{
		"gzip": true, "GZIP": true, "deflate, gzip": true, "gzip;q=0.5": true, "*": true,
		"": false, "br": false, "gzip;q=0": false, "gzip; q=0": false, "identity": false,
	} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestHandler_Wasm_MethodNotAllowed(t *testing.T) {
	h := newHandler(gzipBytes(t, fakeWasm), "", slog.Default())
	if rec := serve(h, http.MethodPost, "/web/app.wasm", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST app.wasm: status %d", rec.Code)
	}
}
