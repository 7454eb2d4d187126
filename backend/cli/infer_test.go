//go:build !js

package cli

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/mapio"
)

// inferFixture returns the ONNX Runtime library and a tiny RD-RE-contract model made by
// backend/inference/testdata/make_golden.py, skipping when either cannot exist on this machine.
func inferFixture(t *testing.T) (lib, model string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(wd)) // backend/cli -> repo root
	lib = filepath.Join(root, "build", "ort", inference.LibraryName)
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("ONNX Runtime library absent at %s (run `make ort`)", lib)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("/usr/bin/python3 absent: cannot build the test model")
	}
	dir := t.TempDir()
	cmd := exec.Command("/usr/bin/python3", filepath.Join(root, "backend", "inference", "testdata", "make_golden.py"),
		"--out", dir, "--size", "64", "--seed", "3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make_golden.py: %v\n%s", err, out)
	}
	return lib, filepath.Join(dir, "model.onnx")
}

// writeCategory writes CATEGORY/test/{good,crack}/NNN.png with different sizes per image.
func writeCategory(t *testing.T) (root string, sizes map[string][2]int) {
	t.Helper()
	root = t.TempDir()
	sizes = map[string][2]int{"good/000": {40, 30}, "good/001": {90, 70}, "crack/000": {65, 65}}
	for key, wh := range sizes {
		img := image.NewNRGBA(image.Rect(0, 0, wh[0], wh[1]))
		for y := 0; y < wh[1]; y++ {
			for x := 0; x < wh[0]; x++ {
				v := uint8((x*7 + y*3 + len(key)*11) % 256)
				img.SetNRGBA(x, y, color.NRGBA{v, 255 - v, uint8(x * y % 256), 255})
			}
		}
		writePNG(t, filepath.Join(root, "test", filepath.FromSlash(key)+".png"), img)
	}
	// Not images: must be ignored.
	if err := os.WriteFile(filepath.Join(root, "test", "good", "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, sizes
}

func TestInfer_Run_WritesMapsAndScores(t *testing.T) {
	lib, model := inferFixture(t)
	data, sizes := writeCategory(t)
	out := filepath.Join(t.TempDir(), "maps")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"infer", "--model", model, "--data", data, "--out", out, "--device", "cpu", "--threads", "1",
		"--batch", "2", "--ort-lib", lib}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(out, "scores.json"))
	if err != nil {
		t.Fatal(err)
	}
	var scores map[string]float64
	if err := json.Unmarshal(raw, &scores); err != nil {
		t.Fatalf("scores.json: %v", err)
	}
	if len(scores) != len(sizes) {
		t.Fatalf("scores.json has %d keys %v, want %d", len(scores), scores, len(sizes))
	}
	// The same model through the package directly must give the same maps and scores.
	m, err := inference.Open(model, inference.Options{Device: "cpu", Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for key, wh := range sizes {
		got, err := mapio.ReadFile(filepath.Join(out, filepath.FromSlash(key)+".npy"))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got.W != wh[0] || got.H != wh[1] {
			t.Errorf("%s: map %dx%d, want the image's %dx%d", key, got.W, got.H, wh[0], wh[1])
		}
		f, err := os.Open(filepath.Join(data, "test", filepath.FromSlash(key)+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := imageio.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		preds, err := m.Predict([]image.Image{img})
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := scores[key]; !ok || math.Abs(s-preds[0].Score) > 1e-6 {
			t.Errorf("%s: score %v (present %v), direct %v", key, s, ok, preds[0].Score)
		}
		for i := range got.Data {
			if math.Abs(float64(got.Data[i]-preds[0].Map[i])) > 1e-6 {
				t.Fatalf("%s: pixel %d is %v, direct %v", key, i, got.Data[i], preds[0].Map[i])
			}
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(out, "*", "*.tmp")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestInfer_Run_BadInput_Errors(t *testing.T) {
	lib, model := inferFixture(t)
	data, _ := writeCategory(t)
	notModel := filepath.Join(t.TempDir(), "x.onnx")
	if err := os.WriteFile(notModel, []byte("not onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		code    int
		mention string
	}{
		{"missing flags", []string{"--model", model}, 2, "required"},
		{"no such split", []string{"--model", model, "--data", data, "--split", "validation", "--out", t.TempDir()}, 1, "splits found: test"},
		{"split with a slash", []string{"--model", model, "--data", data, "--split", "../x", "--out", t.TempDir()}, 1, "not a split"},
		{"not a model", []string{"--model", notModel, "--data", data, "--out", t.TempDir()}, 1, "not a loadable ONNX model"},
		{"bad device", []string{"--model", model, "--data", data, "--out", t.TempDir(), "--device", "npu"}, 1, "unknown device"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"infer", "--ort-lib", lib}, c.args...), &stdout, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.mention) {
				t.Errorf("exit %d (want %d), stderr %q should mention %q", code, c.code, stderr.String(), c.mention)
			}
		})
	}
}
