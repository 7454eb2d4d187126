//go:build !js

package dataset

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset/datasettest"
	"github.com/rdre-studio/studio/shared/protocol"
)

// TestOpen_PythonTrainer_SameTrainImages: the Python trainer's reader (models/rdre/data.py) lists the same
// normal training images as this package, in the same order, for every generated layout; the layouts
// without a training split are refused there.
func TestOpen_PythonTrainer_SameTrainImages(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skipf("%s absent: the Python trainer cannot run on this machine", py)
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	for _, layout := range datasettest.Layouts() {
		t.Run(layout, func(t *testing.T) {
			fx, err := datasettest.Write(dir, layout)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Open(fx.Root)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var want []string
			for _, im := range d.Images() {
				if im.Split == protocol.SplitTrain && im.Kind == protocol.KindGood {
					want = append(want, im.ID)
				}
			}
			cmd := exec.Command(py, "-m", "models.rdre.data", "train-list", fx.Root)
			cmd.Dir = repo
			out, err := cmd.Output()
			if len(want) == 0 {
				if err == nil {
					t.Fatalf("Python listed training images %s for a layout without a train split", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("train-list: %v (%s)", err, exitStderr(err))
			}
			var got struct {
				Layout string   `json:"layout"`
				Train  []string `json:"train"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("train-list output %q: %v", out, err)
			}
			if got.Layout != d.Info().Layout || !reflect.DeepEqual(got.Train, want) {
				t.Fatalf("Python: %s %v\nGo:     %s %v", got.Layout, got.Train, d.Info().Layout, want)
			}
		})
	}
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestTruth_PythonTrainer_SameMasks: the Python reader's decode_mask gives every mask file of every
// generated layout (each layout another encoding: 0/255, 0/1, class ids, 16-bit, palette, RGB, RGBA, JPEG,
// soft edges) the same defect pixels as Truth.
func TestTruth_PythonTrainer_SameMasks(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skipf("%s absent: the Python trainer cannot run on this machine", py)
	}
	if err := exec.Command(py, "-c", "import numpy, PIL").Run(); err != nil {
		t.Skipf("%s lacks numpy or PIL (make test installs python3-numpy and python3-pil)", py)
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	want := map[string]int{} // absolute mask file -> defect pixels
	for _, layout := range datasettest.Layouts() {
		fx, err := datasettest.Write(t.TempDir(), layout)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Open(fx.Root)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range d.Images() {
			for _, f := range d.MaskFiles(im.ID) {
				m, err := d.decodeMask(f)
				if err != nil {
					t.Fatal(err)
				}
				want[filepath.Join(fx.Root, filepath.FromSlash(f))] = m.Defects
			}
		}
		d.Close()
	}
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	script := `import json, sys
from models.rdre.data import decode_mask
print(json.dumps({p: int(decode_mask(p).sum()) for p in json.load(sys.stdin)}))`
	cmd := exec.Command(py, "-c", script)
	cmd.Dir = repo
	in, _ := json.Marshal(paths)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python decode_mask: %v (%s)", err, exitStderr(err))
	}
	var got map[string]int
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Python read %d masks, Go %d", len(got), len(want))
	}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("%s: Python %d defect pixels, Go %d", p, got[p], n)
		}
	}
}
