//go:build !js

package report

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"

	"github.com/rdre-studio/studio/backend/store"
)

// contentTypes are the formats the handler serves.
var contentTypes = map[string]string{
	"html": "text/html; charset=utf-8",
	"json": "application/json",
	"csv":  "text/csv; charset=utf-8",
	"md":   "text/markdown; charset=utf-8",
}

// safeName keeps a job id usable in a Content-Disposition file name.
var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Handler serves reports for the UI's export buttons:
//
//	GET ?job=ID&format=html|json|csv|md[&compare=ID2][&download=1]
//
// With compare, the two jobs are rendered side by side (html or md). download=1 adds a
// Content-Disposition attachment header with a file name. The report is rendered into memory first, so
// an error is a clean HTTP error and never half a document.
func Handler(st *store.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		job, format, other := q.Get("job"), q.Get("format"), q.Get("compare")
		if format == "" {
			format = "html"
		}
		ct, ok := contentTypes[format]
		if job == "" || !ok {
			http.Error(w, "want ?job=ID&format=html|json|csv|md[&compare=ID2]", http.StatusBadRequest)
			return
		}
		if other != "" && format != "html" && format != "md" {
			http.Error(w, "a comparison is available as html or md", http.StatusBadRequest)
			return
		}
		var buf bytes.Buffer
		name := "rdre-report-" + safeName.ReplaceAllString(job, "_")
		if err := render(&buf, st, job, other, format); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, store.ErrNotFound) {
				status = http.StatusNotFound
			} else if errors.Is(err, ErrNotFinished) {
				status = http.StatusConflict
			}
			slog.Warn("report", "job", job, "compare", other, "format", format, "err", err)
			http.Error(w, err.Error(), status)
			return
		}
		if other != "" {
			name += "-vs-" + safeName.ReplaceAllString(other, "_")
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-store")
		if q.Get("download") == "1" {
			w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+"."+format))
		}
		w.Write(buf.Bytes())
	})
}

func render(buf *bytes.Buffer, st *store.Store, job, other, format string) error {
	a, err := Load(st, job)
	if err != nil {
		return err
	}
	defer a.Close()
	if other == "" {
		return Write(buf, format, a.Input)
	}
	b, err := Load(st, other)
	if err != nil {
		return err
	}
	defer b.Close()
	c, err := Compare(a.Input, b.Input)
	if err != nil {
		return err
	}
	if format == "md" {
		return c.WriteMarkdown(buf)
	}
	return c.WriteHTML(buf)
}
