//go:build !js

// Package webui serves RD-RE Studio's browser UI: the go-app pages (pre-rendered on the server by the
// same components that run in the browser, package app/ui), the go-app loader scripts, the static files
// of package assets under /web/, and the wasm build of the UI at /web/app.wasm.
//
// Contract:
//   - Handler mounts at "/"; the server routes /api/ and /ws before it. Unknown page paths answer 404.
//   - app.wasm is embedded gzip-compressed (dist/app.wasm.gz, written by `make build`). A client that
//     accepts gzip gets those bytes with Content-Encoding: gzip; any other client gets them
//     decompressed. Without a build the binary still compiles and serves pages, and /web/app.wasm
//     answers 503 "app.wasm not built: run make build".
//   - The app version given to go-app (its service worker cache key and ETag) is a hash of the embedded
//     wasm unless Options.Version says otherwise, so a new build is never served from a stale cache.
//   - Nothing refers to an external host: the tool works offline.
package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/app/ui"
	"github.com/rdre-studio/studio/assets"
)

//go:embed dist
var dist embed.FS

// wasmPath is where the build leaves the compressed wasm inside dist.
const wasmPath = "dist/app.wasm.gz"

// Options configures Handler. The zero value is ready to use.
type Options struct {
	// Version overrides the app version (default: a hash of the embedded app.wasm).
	Version string
	// Logger receives request errors (default slog.Default()).
	Logger *slog.Logger
}

var registerOnce sync.Once

// Handler returns the UI's HTTP handler.
func Handler(opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	gz, err := fs.ReadFile(dist, wasmPath)
	if err != nil {
		log.Warn("app.wasm is not embedded: the UI will not start in the browser; run make build", "err", err)
		gz = nil
	}
	return newHandler(gz, opts.Version, log)
}

func newHandler(gz []byte, version string, log *slog.Logger) http.Handler {
	// go-app keeps its routes in a package-level table: register them once per process.
	registerOnce.Do(ui.Register)
	w := &wasmFile{gz: gz, log: log}
	if len(gz) >= 18 {
		// The gzip trailer ends with the uncompressed size mod 2^32; app.wasm is far below 4 GiB.
		w.rawSize = int64(binary.LittleEndian.Uint32(gz[len(gz)-4:]))
	}
	if version == "" {
		if gz == nil {
			version = "unbuilt"
		} else {
			sum := sha256.Sum256(gz)
			version = hex.EncodeToString(sum[:8])
		}
	}
	static, err := fs.Sub(assets.Web, "web")
	if err != nil {
		// assets.Web embeds "web" at compile time, so this cannot fail in a built binary.
		panic("webui: assets: " + err.Error())
	}
	res := resources{wasm: w, static: http.StripPrefix("/web/", http.FileServer(http.FS(static)))}
	h := &app.Handler{
		Name:            "RD-RE Studio",
		ShortName:       "RD-RE",
		Title:           "RD-RE Studio",
		Description:     "Label anomaly masks, inspect heatmaps and evaluate RD-RE anomaly detection models.",
		Author:          "RD-RE Studio",
		Icon:            app.Icon{Default: "/web/icon-192.png", Large: "/web/icon-512.png", SVG: "/web/icon.svg"},
		Styles:          []string{"/web/studio.css"},
		BackgroundColor: "#0f1419",
		ThemeColor:      "#0f1419",
		LoadingLabel:    "Loading RD-RE Studio {progress}%",
		Resources:       res,
		Version:         version,
	}
	if w.rawSize > 0 {
		// The loader's progress bar counts decompressed bytes; Content-Length is the gzip size.
		h.WasmContentLength = strconv.FormatInt(w.rawSize, 10)
	}
	return securityHeaders(h)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// resources resolves and serves go-app's /web/ paths from the binary itself.
type resources struct {
	wasm   http.Handler
	static http.Handler
}

func (resources) Resolve(location string) string {
	if location == "" {
		return "/"
	}
	return location
}

func (r resources) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/web/app.wasm" {
		r.wasm.ServeHTTP(w, req)
		return
	}
	r.static.ServeHTTP(w, req)
}

type wasmFile struct {
	gz      []byte
	rawSize int64
	log     *slog.Logger
}

func (f *wasmFile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if f.gz == nil {
		http.Error(w, "app.wasm not built: run make build", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/wasm")
	h.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(f.gz)))
		if r.Method == http.MethodHead {
			return
		}
		if _, err := w.Write(f.gz); err != nil {
			f.log.Debug("send app.wasm", "err", err)
		}
		return
	}
	if f.rawSize > 0 {
		h.Set("Content-Length", strconv.FormatInt(f.rawSize, 10))
	}
	if r.Method == http.MethodHead {
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(f.gz))
	if err != nil {
		f.log.Error("embedded app.wasm.gz is corrupt", "err", err)
		http.Error(w, "embedded app.wasm is corrupt: rebuild with make build", http.StatusInternalServerError)
		return
	}
	if _, err := io.Copy(w, zr); err != nil {
		f.log.Debug("send app.wasm", "err", err)
	}
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip (and does not refuse it with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		if strings.HasPrefix(q, "q=") {
			if v, err := strconv.ParseFloat(q[2:], 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}
