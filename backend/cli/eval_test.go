//go:build !js

package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/mapio"
)

const evalVectors = "../../../shared/metrics-vectors"

func TestEval_Run_SharedVectors(t *testing.T) {
	for _, c := range []struct{ name, category string }{{"v1_tiny8", "tiny8"}, {"v3_ties64", "ties64"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(evalVectors, c.name)
			if _, err := os.Stat(dir); err != nil {
				t.Skipf("metric vectors not found at %s (CI puts shared/ beside the checkout): %v", dir, err)
			}
			var exp map[string]any
			raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &exp); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			rc := Main([]string{"eval", "--maps", filepath.Join(dir, "maps", c.category, "test"),
				"--gt", filepath.Join(dir, "data", c.category), "--scores", filepath.Join(dir, "scores.json")}, &out, &errb)
			if rc != 0 {
				t.Fatalf("rc %d: %s", rc, errb.String())
			}
			var got map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
			}
			for _, k := range []string{"image_auroc", "image_ap", "image_f1_max", "image_f1_max_threshold", "pixel_auroc",
				"pixel_ap", "pixel_f1_max", "pixel_f1_max_threshold", "pixel_aupro"} {
				g, ok := got[k].(float64)
				if !ok {
					t.Errorf("%s: got %v", k, got[k])
					continue
				}
				if w := exp[k].(float64); math.Abs(g-w) > 1e-9 {
					t.Errorf("%s: got %.17g, want %.17g", k, g, w)
				}
			}
			gc, ec := got["counts"].(map[string]any), exp["counts"].(map[string]any)
			for k, v := range ec {
				if gc[k] != v {
					t.Errorf("counts.%s: got %v, want %v", k, gc[k], v)
				}
			}
			if _, has := got["per_image"]; has {
				t.Error("per_image printed without --detail")
			}
		})
	}
}

// writeCase builds a one-kind MVTec-layout case: a good image and a defect image with a 2x2 defect.
func writeCase(t *testing.T) (maps, gt string) {
	t.Helper()
	root := t.TempDir()
	maps, gt = filepath.Join(root, "maps"), filepath.Join(root, "gt")
	for _, d := range []string{"test/good", "test/crack", "ground_truth/crack"} {
		if err := os.MkdirAll(filepath.Join(gt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"good", "crack"} {
		if err := os.MkdirAll(filepath.Join(maps, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for _, p := range []string{"test/good/000.png", "test/crack/000.png"} {
		writePNG(t, filepath.Join(gt, p), img)
	}
	mask := image.NewGray(image.Rect(0, 0, 4, 4))
	for _, i := range []int{0, 1, 4, 5} {
		mask.Pix[i] = 255
	}
	writePNG(t, filepath.Join(gt, "ground_truth/crack/000_mask.png"), mask)
	m := make([]float32, 16)
	for i := range m {
		m[i] = float32(i) / 16
	}
	writeNPY(t, filepath.Join(maps, "good/000.npy"), 4, 4, m)
	d := make([]float32, 16)
	copy(d, m)
	for _, i := range []int{0, 1, 4, 5} {
		d[i] = 2
	}
	writeNPY(t, filepath.Join(maps, "crack/000.npy"), 4, 4, d)
	return maps, gt
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func writeNPY(t *testing.T, path string, w, h int, data []float32) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := mapio.WriteNPY(f, w, h, data); err != nil {
		t.Fatal(err)
	}
}

func TestEval_Run_PerfectCaseWithDetail(t *testing.T) {
	maps, gt := writeCase(t)
	var out, errb bytes.Buffer
	if rc := Main([]string{"eval", "--maps", maps, "--gt", gt, "--detail"}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	var got struct {
		PixelAUROC float64 `json:"pixel_auroc"`
		PixelAUPRO float64 `json:"pixel_aupro"`
		ImageAUROC float64 `json:"image_auroc"`
		PerImage   []struct {
			Key     string `json:"key"`
			Regions []struct {
				Covered float64 `json:"covered"`
			} `json:"regions"`
		} `json:"per_image"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.PixelAUROC != 1 || got.PixelAUPRO != 1 || got.ImageAUROC != 1 {
		t.Errorf("a perfect map should score 1: %s", out.String())
	}
	if len(got.PerImage) != 2 || got.PerImage[0].Key != "crack/000" || len(got.PerImage[0].Regions) != 1 || got.PerImage[0].Regions[0].Covered != 1 {
		t.Errorf("per-image detail: %+v", got.PerImage)
	}
}

func TestEval_Run_BadInputNamesTheFile(t *testing.T) {
	cases := map[string]struct {
		break_ func(t *testing.T, maps, gt string)
		want   string
	}{
		"missing map": {func(t *testing.T, maps, gt string) { os.Remove(filepath.Join(maps, "crack/000.npy")) }, "crack/000"},
		"nan": {func(t *testing.T, maps, gt string) {
			m := make([]float32, 16)
			m[5] = float32(math.NaN())
			writeNPY(t, filepath.Join(maps, "good/000.npy"), 4, 4, m)
		}, "good/000.npy"},
		"size mismatch": {func(t *testing.T, maps, gt string) {
			writeNPY(t, filepath.Join(maps, "crack/000.npy"), 2, 8, make([]float32, 16))
		}, "000.npy is 2x8 but its image test/crack/000.png is 4x4"},
		"good map size": {func(t *testing.T, maps, gt string) {
			writeNPY(t, filepath.Join(maps, "good/000.npy"), 8, 2, make([]float32, 16))
		}, "test/good/000.png"},
		"broken npy": {func(t *testing.T, maps, gt string) {
			os.WriteFile(filepath.Join(maps, "good/000.npy"), []byte("\x93NUMPY garbage"), 0o644)
		}, "good/000.npy"},
		"score missing": {func(t *testing.T, maps, gt string) {
			os.WriteFile(filepath.Join(gt, "scores.json"), []byte(`{"good/000": 1}`), 0o644)
		}, "crack/000"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			maps, gt := writeCase(t)
			c.break_(t, maps, gt)
			args := []string{"eval", "--maps", maps, "--gt", gt}
			if name == "score missing" {
				args = append(args, "--scores", filepath.Join(gt, "scores.json"))
			}
			var out, errb bytes.Buffer
			if rc := Main(args, &out, &errb); rc != 1 {
				t.Fatalf("rc %d, want 1; stderr %s", rc, errb.String())
			}
			if !strings.Contains(errb.String(), c.want) {
				t.Errorf("error %q does not name %q", errb.String(), c.want)
			}
		})
	}
	var out, errb bytes.Buffer
	if rc := Main([]string{"eval", "--maps", "x"}, &out, &errb); rc != 2 {
		t.Errorf("missing --gt: rc %d, want 2", rc)
	}
}

// TestEval_SortBudget_SameResult: float32 maps larger than the smallest --sort-budget (two kinds, so the
// per-kind sweeps merge too) give the same JSON under 1MiB as under the default; a bad budget exits 2.
func TestEval_SortBudget_SameResult(t *testing.T) {
	root := t.TempDir()
	maps, gt := filepath.Join(root, "maps"), filepath.Join(root, "gt")
	const w, h = 384, 384
	r := rand.New(rand.NewPCG(5, 6))
	for i, kind := range []string{"good", "good", "crack", "crack", "spot", "spot"} {
		stem := fmt.Sprintf("%03d", i)
		writePNG(t, filepath.Join(gt, "test", kind, stem+".png"), image.NewGray(image.Rect(0, 0, w, h)))
		m := make([]float32, w*h)
		for j := range m {
			m[j] = r.Float32()
		}
		if kind != "good" {
			mask := image.NewGray(image.Rect(0, 0, w, h))
			x0, y0 := r.IntN(w-40), r.IntN(h-40)
			for y := y0; y < y0+40; y++ {
				for x := x0; x < x0+40; x++ {
					mask.Pix[y*w+x] = 255
					m[y*w+x] += 0.5 * r.Float32()
				}
			}
			writePNG(t, filepath.Join(gt, "ground_truth", kind, stem+"_mask.png"), mask)
		}
		if err := os.MkdirAll(filepath.Join(maps, kind), 0o755); err != nil {
			t.Fatal(err)
		}
		writeNPY(t, filepath.Join(maps, kind, stem+".npy"), w, h, m)
	}
	run := func(extra ...string) (int, string, string) {
		var out, errb bytes.Buffer
		rc := Main(append([]string{"eval", "--maps", maps, "--gt", gt, "--detail", "--histogram-budget", "0"}, extra...), &out, &errb)
		return rc, out.String(), errb.String()
	}
	rc, want, stderr := run()
	if rc != 0 {
		t.Fatalf("default budget: rc %d: %s", rc, stderr)
	}
	rc, got, stderr := run("--sort-budget", "1MiB")
	if rc != 0 {
		t.Fatalf("1MiB: rc %d: %s", rc, stderr)
	}
	if got != want {
		t.Errorf("--sort-budget 1MiB changed the result:\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{"12", "lots", "-1GiB"} {
		if rc, _, stderr := run("--sort-budget", bad); rc != 2 || !strings.Contains(stderr, "--sort-budget") {
			t.Errorf("--sort-budget %s: rc %d, %q; want 2 and a message naming the flag", bad, rc, stderr)
		}
	}
}
