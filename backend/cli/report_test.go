//go:build !js

package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/report"
	"github.com/rdre-studio/studio/backend/store"
	sm "github.com/rdre-studio/studio/shared/metrics"
)

// writeMVTecCategory writes a small MVTec-layout category: 3 defect-free and 3 defective test images
// with masks, 40x32 pixels.
func writeMVTecCategory(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "parts")
	put := func(rel string, img image.Image) {
		writePNG(t, filepath.Join(root, filepath.FromSlash(rel)), img)
	}
	const w, h = 40, 32
	for i := 0; i < 6; i++ {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		mask := image.NewGray(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := uint8(90 + (x*5+y*3+i*17)%60)
				if i >= 3 && x >= 8+4*i && x < 16+4*i && y >= 10 && y < 18 {
					v = 250 // a bright defect
					mask.SetGray(x, y, color.Gray{255})
				}
				img.SetNRGBA(x, y, color.NRGBA{v, v, v, 255})
			}
		}
		if i < 3 {
			put(fmt.Sprintf("test/good/%03d.png", i), img)
			continue
		}
		put(fmt.Sprintf("test/spot/%03d.png", i-3), img)
		put(fmt.Sprintf("ground_truth/spot/%03d_mask.png", i-3), mask)
	}
	return root
}

// TestStudy_Noise_ThenReport runs the robustness study with the real job runner and ONNX Runtime on a
// tiny model, then writes every report format of its jobs from the workspace.
func TestStudy_Noise_ThenReport(t *testing.T) {
	lib, model := inferFixture(t)
	data := writeMVTecCategory(t)
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws.db")
	studyOut := filepath.Join(dir, "study.html")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"study", "noise", "--workspace", ws, "--model", model, "--data", data, "--ort-lib", lib,
		"--device", "cpu", "--threads", "1", "--std", "0.02,0.2", "--bench-seconds", "0.05", "--out", studyOut}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("study exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	page, err := os.ReadFile(studyOut)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-table="robustness"`, `data-std="0.02"`, `data-std="0.2"`, `data-std="0"`, `data-table="efficiency"`, "images/s at batch"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("study report lacks %q", want)
		}
	}

	// The study's jobs are ordinary workspace jobs: find them and report on them.
	st, err := store.Open(ws)
	if err != nil {
		t.Fatal(err)
	}
	byNoise := map[float64]string{}
	results := map[string]*sm.Result{}
	err = st.Jobs(func(id string, raw []byte) error {
		var rec struct {
			Info struct {
				NoiseStd float64 `json:"noiseStd"`
				State    string  `json:"state"`
			} `json:"info"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return err
		}
		byNoise[rec.Info.NoiseStd] = id
		res, err := st.Result(id)
		if err != nil {
			return err
		}
		var r sm.Result
		if err := json.Unmarshal(res, &r); err != nil {
			return err
		}
		results[id] = &r
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(byNoise) != 3 {
		t.Fatalf("jobs by noise level: %v, want 0, 0.02 and 0.2", byNoise)
	}
	clean, noisy := byNoise[0], byNoise[0.2]
	if *results[clean].PixelAUROC == *results[noisy].PixelAUROC && *results[clean].PixelAP == *results[noisy].PixelAP {
		t.Error("noise σ=0.2 left the pixel metrics unchanged: the noise was not applied")
	}

	for _, ext := range []string{"html", "json", "csv", "md"} {
		out := filepath.Join(dir, "clean."+ext)
		stdout.Reset()
		stderr.Reset()
		if code := Main([]string{"report", "--workspace", ws, "--job", clean, "--out", out, "--noise-jobs", byNoise[0.02] + "," + noisy}, &stdout, &stderr); code != 0 {
			t.Fatalf("report .%s exit %d: %s", ext, code, stderr.String())
		}
	}
	var doc report.Document
	raw, _ := os.ReadFile(filepath.Join(dir, "clean.json"))
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(doc.Metrics)
	want, _ := json.Marshal(results[clean])
	if !bytes.Equal(got, want) {
		t.Errorf("JSON report metrics differ from the job's result:\n got %s\nwant %s", got, want)
	}
	// The same numbers from the other path: `rdre infer` writes the maps, `rdre eval` evaluates them.
	maps := filepath.Join(dir, "maps")
	if code := Main([]string{"infer", "--model", model, "--data", data, "--out", maps, "--ort-lib", lib, "--device", "cpu", "--threads", "1", "--quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("infer exit %d: %s", code, stderr.String())
	}
	stdout.Reset()
	if code := Main([]string{"eval", "--maps", maps, "--gt", data, "--scores", filepath.Join(maps, "scores.json")}, &stdout, &stderr); code != 0 {
		t.Fatalf("eval exit %d: %s", code, stderr.String())
	}
	var ev sm.Result
	if err := json.Unmarshal(stdout.Bytes(), &ev); err != nil {
		t.Fatalf("eval output: %v\n%s", err, stdout.String())
	}
	for name, pair := range map[string][2]*float64{
		"image AUROC": {doc.Metrics.ImageAUROC, ev.ImageAUROC}, "pixel AUROC": {doc.Metrics.PixelAUROC, ev.PixelAUROC},
		"pixel AP": {doc.Metrics.PixelAP, ev.PixelAP}, "AUPRO": {doc.Metrics.PixelAUPRO, ev.PixelAUPRO},
		"pixel F1-max": {doc.Metrics.PixelF1Max, ev.PixelF1Max}, "image F1-max": {doc.Metrics.ImageF1Max, ev.ImageF1Max},
	} {
		if pair[0] == nil || pair[1] == nil || *pair[0] != *pair[1] {
			t.Errorf("%s: report %v, rdre eval %v", name, fmtp(pair[0]), fmtp(pair[1]))
		}
	}
	if len(doc.Robustness) != 2 || doc.Robustness[1].Std != 0.2 {
		t.Errorf("robustness levels %+v", doc.Robustness)
	}
	f, _ := os.Open(filepath.Join(dir, "clean.csv"))
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 1+6 {
		t.Errorf("CSV: %d rows (%v), want header + 6", len(rows), err)
	}

	cmp := filepath.Join(dir, "cmp.md")
	if code := Main([]string{"report", "--workspace", ws, "--job", clean, "--compare", noisy, "--out", cmp}, &stdout, &stderr); code != 0 {
		t.Fatalf("compare exit %d: %s", code, stderr.String())
	}
	md, _ := os.ReadFile(cmp)
	if !strings.Contains(string(md), "σ 0.2") || !strings.Contains(string(md), "Δ") {
		t.Errorf("comparison Markdown does not name the sides by noise:\n%s", md)
	}
}

func TestReport_Run_BadInput_Errors(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws.db")
	st, err := store.Open(ws)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"report", "--workspace", ws, "--job", "x"}, 2, "usage"},
		{[]string{"report", "--workspace", ws, "--job", "x", "--out", "r.pdf"}, 2, "extension"},
		{[]string{"report", "--workspace", ws, "--job", "x", "--out", "r.csv", "--compare", "y"}, 2, "comparison"},
		{[]string{"report", "--workspace", ws, "--job", "nope", "--out", filepath.Join(t.TempDir(), "r.html")}, 1, "not found"},
		{[]string{"report", "--workspace", filepath.Join(t.TempDir(), "missing.db"), "--job", "x", "--out", "r.html"}, 1, "missing.db"},
		{[]string{"study"}, 2, "usage"},
		{[]string{"study", "noise", "--model", "m.onnx", "--data", "d", "--out", "o.html", "--std", "0.1,-1"}, 2, "noise level"},
		{[]string{"study", "noise", "--model", "m.onnx", "--data", "d", "--out", "o.txt"}, 2, "extension"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.msg)
		}
	}
}

func fmtp(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
