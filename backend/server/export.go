//go:build !js

package server

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rdre-studio/studio/backend/maskexport"
)

// handleExport answers GET /api/export?dataset=ID[&format=mvtec|coco] with a zip of the dataset's masks
// (the workspace's where drawn, else the dataset's): the same files `rdre export` writes, so the button
// and the command cannot drift apart. The export is built in a temporary folder and removed afterwards.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ds, ok := s.datasets[q.Get("dataset")]
	if !ok {
		http.Error(w, fmt.Sprintf("dataset %q not found", q.Get("dataset")), http.StatusNotFound)
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "mvtec"
	}
	if format != "mvtec" && format != "coco" {
		http.Error(w, "format must be mvtec or coco", http.StatusBadRequest)
		return
	}
	tmp, err := os.MkdirTemp("", "rdre-export-")
	if err != nil {
		http.Error(w, fmt.Sprintf("export: %v", err), http.StatusInternalServerError)
		return
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "export")
	switch format {
	case "mvtec":
		_, err = maskexport.ExportMVTec(ds, s.store, out, maskexport.Options{})
	case "coco":
		if err = os.MkdirAll(out, 0o755); err == nil {
			_, err = maskexport.ExportCOCO(ds, s.store, filepath.Join(out, "annotations.json"))
		}
	}
	if err != nil {
		s.log.Error("export failed", "dataset", ds.Info().ID, "err", err)
		http.Error(w, fmt.Sprintf("export %s: %v", ds.Info().ID, err), http.StatusInternalServerError)
		return
	}
	name := fmt.Sprintf("%s-%s-%s.zip", ds.Info().ID, format, time.Now().UTC().Format("20060102-150405"))
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	if err := zipDir(w, out); err != nil {
		// Headers are gone; the truncated zip fails to open, and the log says why.
		s.log.Error("export zip failed", "dataset", ds.Info().ID, "err", err)
	}
}

func zipDir(w io.Writer, dir string) error {
	zw := zip.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		zf, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		_, err = io.Copy(zf, f)
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}
