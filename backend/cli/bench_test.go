//go:build !js

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestBench_Run_JSONWithoutTorch(t *testing.T) {
	lib, model := inferFixture(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"bench", "--model", model, "--ort-lib", lib, "--threads", "1", "--batch", "4", "--seconds", "0.05",
		"--image-size", "120", "--torch", "off", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got struct {
		ORT     benchResult `json:"onnxruntime"`
		E2E     []float64   `json:"end_to_end_ms"`
		PyTorch benchResult `json:"pytorch"`
	}
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("bench --json output: %v", err)
	}
	o := got.ORT
	if o.P50ms <= 0 || o.P95ms < o.P50ms || o.PeakRSSMB <= 0 || len(o.Throughput) != 3 || o.BestIPS != o.Throughput[strconv.Itoa(o.BestBatch)] {
		t.Errorf("implausible ONNX Runtime result %+v", o)
	}
	if len(got.E2E) != 2 || got.E2E[0] <= 0 {
		t.Errorf("end-to-end latency %v", got.E2E)
	}
	if got.PyTorch.Status != "skipped" {
		t.Errorf("pytorch status %q with --torch off", got.PyTorch.Status)
	}
}

// The PyTorch side: models/bench_torch.py builds the architecture named in the ONNX metadata (here
// MobileNetV2 RD-RE at 64x64 with random weights), times it and reports back; the text report
// carries both sides and the ratio.
func TestBench_Run_TorchRandom(t *testing.T) {
	lib, _ := inferFixture(t)
	wd, _ := os.Getwd()
	root := filepath.Dir(filepath.Dir(wd))
	dir := t.TempDir()
	cmd := exec.Command("/usr/bin/python3", filepath.Join(root, "backend", "inference", "testdata", "make_golden.py"),
		"--out", dir, "--size", "64", "--teacher", "mobilenet_v2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make_golden.py: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	code := Main([]string{"bench", "--model", filepath.Join(dir, "model.onnx"), "--ort-lib", lib, "--threads", "1", "--batch", "2",
		"--seconds", "0.05", "--image-size", "0", "--torch", "random", "--torch-script", filepath.Join(root, "models", "bench_torch.py")},
		&stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr.String())
	}
	t.Log(out)
	for _, want := range []string{"ONNX Runtime (this binary)", "weights: random", "ratio      latency p50 PyTorch/ORT"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Count(out, "latency batch 1 (network only): p50") != 2 {
		t.Errorf("report should carry a latency line per side")
	}
}

func TestBench_Run_BadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"bench"}, &stdout, &stderr); code != 2 {
		t.Errorf("no --model: exit %d, want 2", code)
	}
	if code := Main([]string{"bench", "--model", "x.onnx", "--torch", "maybe"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--torch") {
		t.Errorf("bad --torch: exit %d, %s", code, stderr.String())
	}
}
