//go:build !js

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset"
)

// TestMain lets the test binary stand in for bin/rdre: `rdre bench --images` runs its own executable
// as `rdre infer`, which under `go test` is this binary, started with RDRE_TEST_AS_RDRE=1.
func TestMain(m *testing.M) {
	if os.Getenv("RDRE_TEST_AS_RDRE") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestBench_Images_SideBySide(t *testing.T) {
	lib, model := inferFixture(t)
	root, _ := writeCategory(t)
	t.Setenv("RDRE_TEST_AS_RDRE", "1") // for the children only: this process is past TestMain
	defer dataset.SetThumbCache("", 0)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"bench", "--images", root, "--model", model, "--ort-lib", lib, "--rounds", "2", "--thumb-size", "32", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep imageBench
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("bench --images --json: %v\n%s", err, stdout.String())
	}
	if rep.Images != 3 || rep.Threads != 1 || rep.Rounds != 2 {
		t.Errorf("report header %+v", rep)
	}
	g := rep.Sides["rdre infer"]
	if g == nil || g.Error != "" || len(g.Wall) != 2 || len(g.CPU) != 2 || g.WallMed <= 0 || g.IPS <= 0 || !strings.Contains(g.Command, "infer --model") {
		t.Errorf("rdre side %+v (stderr %s)", g, stderr.String())
	}
	// The Python side runs the same model through models.predict; it either ran or says why not.
	var py *benchSide
	for n, s := range rep.Sides {
		if strings.HasPrefix(n, "python") {
			py = s
		}
	}
	if py != nil {
		t.Logf("python side: error %q, wall %v", py.Error, py.Wall)
	}
	if py == nil || (py.Error == "" && (len(py.Wall) != 2 || py.WallMed <= 0)) {
		t.Errorf("python side %+v", py)
	}
	if py != nil && py.Error == "" && (rep.ScoreDiff == nil || *rep.ScoreDiff > 1e-4) {
		t.Errorf("scores of the two sides differ by %v", rep.ScoreDiff)
	}
	tb := rep.Thumbnails
	if tb == nil || tb.Images != 3 || tb.Size != 32 || tb.Cold.Wall <= 0 || tb.DiskMB <= 0 {
		t.Errorf("thumbnails %+v", tb)
	}
}

func TestBench_Images_BadFlags(t *testing.T) {
	root, _ := writeCategory(t)
	for _, args := range [][]string{
		{"bench", "--images", root, "--rounds", "0", "--no-infer"},
		{"bench", "--images", root, "--thumb-size", "4", "--no-infer"},
		{"bench", "--images", root}, // no --model for the inference side
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}
