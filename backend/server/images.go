//go:build !js

package server

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"strconv"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/imageio"
)

// lookup resolves ?dataset=&id= into an indexed image; it writes the HTTP error itself.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*dataset.Dataset, string, bool) {
	q := r.URL.Query()
	ds, ok := s.datasets[q.Get("dataset")]
	if !ok {
		http.Error(w, fmt.Sprintf("dataset %q not found", q.Get("dataset")), http.StatusNotFound)
		return nil, "", false
	}
	id := q.Get("id")
	if _, ok := ds.Image(id); !ok {
		http.Error(w, fmt.Sprintf("image %q not found in dataset %s", id, ds.Info().ID), http.StatusNotFound)
		return nil, "", false
	}
	return ds, id, true
}

// handleImage sends the original file when the browser can show it (PNG, JPEG) and a PNG otherwise.
//
// The browser must show the STORED pixels, which masks, anomaly maps, thumbnails and metrics use (see
// imageio's package doc): it rotates a JPEG or PNG by its EXIF orientation, so a file that declares one
// other than 1 goes out with that tag rewritten to 1. That keeps the original bytes otherwise (lossless,
// same size, no decode per request), where re-encoding a photo to PNG would make it several times larger
// and cost a decode and an encode. When the metadata cannot be read, the decoded pixels go out as PNG:
// what the browser would make of such a file is unknown.
func (s *Server) handleImage(w http.ResponseWriter, r *http.Request) {
	ds, id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	f, err := ds.Open(id)
	if err != nil {
		httpError(w, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, fmt.Sprintf("image %s: %v", id, err), http.StatusInternalServerError)
		return
	}
	_, format, err := imageio.DecodeConfig(io.NewSectionReader(f, 0, st.Size()))
	if err != nil {
		http.Error(w, fmt.Sprintf("image %s: %v", id, err), http.StatusUnprocessableEntity)
		return
	}
	w.Header().Set("Cache-Control", "private, max-age=3600")
	if format == "png" || format == "jpeg" {
		body, _, err := imageio.ResetOrientation(f, st.Size())
		if err == nil {
			w.Header().Set("Content-Type", "image/"+format)
			w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
			io.Copy(w, body)
			return
		}
	}
	// The decoded pixels stay reserved in the decode budget while the PNG is encoded and sent, so that
	// many BMP or TIFF requests at once wait for memory instead of each holding a full image outside it.
	img, release, err := ds.DecodeHeld(id)
	if err != nil {
		http.Error(w, fmt.Sprintf("image %s: %v", id, err), http.StatusUnprocessableEntity)
		return
	}
	defer release()
	writePNG(w, img)
}

func (s *Server) handleThumb(w http.ResponseWriter, r *http.Request) {
	ds, id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	size := 160
	if v := r.URL.Query().Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 16 || n > 1024 {
			http.Error(w, "size must be an integer in 16..1024", http.StatusBadRequest)
			return
		}
		size = n
	}
	b, err := ds.ThumbnailContext(r.Context(), id, size)
	if r.Context().Err() != nil {
		return // the browser left: nobody reads the answer
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("thumbnail of %s: %v", id, err), http.StatusUnprocessableEntity)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Write(b)
}

// handleGroundTruth sends the dataset's own mask as a 0/255 PNG.
func (s *Server) handleGroundTruth(w http.ResponseWriter, r *http.Request) {
	ds, id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	m, mw, mh, has, err := ds.GroundTruth(id)
	if err != nil {
		http.Error(w, fmt.Sprintf("ground truth of %s: %v", id, err), http.StatusUnprocessableEntity)
		return
	}
	if !has {
		http.Error(w, fmt.Sprintf("image %s has no ground-truth mask", id), http.StatusNotFound)
		return
	}
	g := image.NewGray(image.Rect(0, 0, mw, mh))
	outline := r.URL.Query().Get("outline") == "1"
	for i, v := range m {
		if v && !outline || outline && onEdge(m, mw, mh, i) {
			g.Pix[i] = 255
		}
	}
	writePNG(w, g)
}

// onEdge reports whether pixel i lies on a region's border: its 4-neighbourhood holds both defect and
// background. Both sides of the border are marked, so the outline is two pixels wide and the editor can
// show it over the editable mask without hiding it.
func onEdge(m []bool, w, h, i int) bool {
	x, y := i%w, i/w
	v := m[i]
	return x > 0 && m[i-1] != v || x+1 < w && m[i+1] != v || y > 0 && m[i-w] != v || y+1 < h && m[i+w] != v
}

func writePNG(w http.ResponseWriter, img image.Image) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		http.Error(w, fmt.Sprintf("encode png: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(buf.Bytes())
}
