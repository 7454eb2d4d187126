//go:build !js

// Package testenv finds the real components that integration tests run against (the repository root,
// the ONNX Runtime library, Debian's Python with PyTorch, Chromium) and builds shared fixtures once per
// test binary. A test that lacks one of them skips with the reason; `make test` provides all of them.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rdre-studio/studio/backend/demodata"
)

// Python is the interpreter with Debian's python3-torch; the pyenv python3 on PATH has no torch.
const Python = "/usr/bin/python3"

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// ORTLibrary returns the ONNX Runtime library that `make ort` provisions, or skips.
// (It does not call inference.Init itself, so that package inference's own tests can use it.)
func ORTLibrary(t testing.TB) string {
	t.Helper()
	lib := filepath.Join(RepoRoot(t), "build", "ort", "libonnxruntime.so.1")
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("ONNX Runtime library absent at %s (run `make ort`)", lib)
	}
	return lib
}

// NeedTorch skips when Debian's PyTorch is missing.
func NeedTorch(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import torch, onnx").Run(); err != nil {
		t.Skipf("%s with torch and onnx is not available (apt-get install python3-torch python3-onnx): %v", Python, err)
	}
}

var (
	demoOnce sync.Once
	demoDir  string
	demoErr  error
)

// Demo returns the root of a demo dataset category (read-only to tests): the one `make build` wrote to
// build/demo when it is complete and of this generator's version (rendering it again under -race costs
// half a minute per test binary), else one generated once per test binary.
func Demo(t testing.TB) string {
	t.Helper()
	built := filepath.Join(RepoRoot(t), "build", "demo")
	demoOnce.Do(func() {
		if demodata.Verify(built) == nil {
			demoDir = built
			return
		}
		demoDir, demoErr = os.MkdirTemp("", "rdre-demo-")
		if demoErr == nil {
			demoErr = demodata.Generate(demoDir)
		}
	})
	if demoErr != nil {
		t.Fatalf("generate demo dataset: %v", demoErr)
	}
	return filepath.Join(demoDir, "tiles")
}

var (
	modelOnce sync.Once
	modelPath string
	modelErr  error
)

// SmallModel exports a small, seeded, random-initialised RD-RE (64x64 input) with models.golden, once per
// test binary: the real export path, fast enough to run over a whole dataset in a test.
func SmallModel(t testing.TB) string {
	t.Helper()
	NeedTorch(t)
	root := RepoRoot(t)
	modelOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rdre-model-")
		if err != nil {
			modelErr = err
			return
		}
		// models.golden needs at least one image; the golden files themselves are not used here.
		img := filepath.Join(Demo(t), "test", "good", "000.png")
		cmd := exec.Command(Python, "-m", "models.golden", "--out", dir, "--size", "64", "--seed", "1", img)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			modelErr = fmt.Errorf("models.golden: %v\n%s", err, out)
			return
		}
		modelPath = filepath.Join(dir, "model.onnx")
	})
	if modelErr != nil {
		t.Fatal(modelErr)
	}
	return modelPath
}
