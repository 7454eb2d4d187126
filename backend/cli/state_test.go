//go:build !js

package cli

import (
	"bytes"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEval_StateOutShardsMerge_BitIdentical: `rdre eval` over a whole set prints exactly the JSON that
// `rdre eval merge` of per-shard states writes, byte for byte, whatever the engine each part took (the
// streaming histogram state, or all maps in memory with --histogram-budget 0) and with warnings (a map
// without image, seen by every shard, printed once).
func TestEval_StateOutShardsMerge_BitIdentical(t *testing.T) {
	m := writeAD2Mini(t)
	maps := filepath.Join(m.maps, "test")
	putNPY(t, filepath.Join(maps, "bad", "099_orphan.npy"), 2, 2, make([]float32, 4))
	dir := t.TempDir()
	for _, flags := range [][]string{
		{},
		{"--detail", "--threshold", "0.5", "--fpr-limit", "0.3,1,0.01"},
	} {
		base := append([]string{"eval", "--maps", maps, "--gt", m.root}, flags...)
		whole, _ := run(t, base...)
		if !strings.Contains(whole, "099_orphan.npy has no test image") {
			t.Fatalf("no warning for the orphan map:\n%s", whole)
		}
		inMemory, _ := run(t, append(base, "--histogram-budget", "0")...)
		if inMemory != whole {
			t.Fatalf("in-memory evaluation differs from the streaming one:\n%s\n%s", inMemory, whole)
		}
		for _, n := range []int{1, 2, 3} {
			var states []string
			for i := range n {
				st := filepath.Join(dir, fmt.Sprintf("s%d-%d-%d.state", len(flags), n, i))
				args := append(append([]string{}, base...), "--shard", fmt.Sprintf("%d/%d", i, n), "--state-out", st)
				if i == 1 {
					args = append(args, "--histogram-budget", "0")
				}
				run(t, args...)
				states = append(states, st)
			}
			outFile := filepath.Join(dir, fmt.Sprintf("r%d-%d.json", len(flags), n))
			run(t, append([]string{"eval", "merge", "--out", outFile}, states...)...)
			got, err := os.ReadFile(outFile)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != whole {
				t.Fatalf("flags %v, %d shards: merged result differs from the whole run:\n%s\nwhole:\n%s", flags, n, got, whole)
			}
		}
	}
	// States of other options do not merge; a shard outside the set is refused.
	a, b := filepath.Join(dir, "a.state"), filepath.Join(dir, "b.state")
	run(t, "eval", "--maps", maps, "--gt", m.root, "--shard", "0/2", "--state-out", a)
	run(t, "eval", "--maps", maps, "--gt", m.root, "--shard", "1/2", "--state-out", b, "--fpr-limit", "1")
	var errb bytes.Buffer
	if rc := Main([]string{"eval", "merge", a, b}, io.Discard, &errb); rc != 1 || !strings.Contains(errb.String(), "other options") {
		t.Errorf("merge of other options: rc %d: %s", rc, errb.String())
	}
	if rc := Main([]string{"eval", "merge", a, a}, io.Discard, &errb); rc != 1 {
		t.Errorf("merge of a state with itself: rc %d", rc)
	}
	if rc := Main([]string{"eval", "--maps", maps, "--gt", m.root, "--shard", "2/2"}, io.Discard, &errb); rc != 2 {
		t.Errorf("shard 2/2: rc %d", rc)
	}
}

// TestEval_LOCO_StateMerge_BitIdentical: the LOCO miniature (saturation regions, by-kind sPRO) split in
// two gives the whole run's JSON.
func TestEval_LOCO_StateMerge_BitIdentical(t *testing.T) {
	dir := t.TempDir()
	root, maps := filepath.Join(dir, "box"), filepath.Join(dir, "maps")
	grey := func(w int, vals ...uint8) *image.Gray {
		g := image.NewGray(image.Rect(0, 0, w, 1))
		copy(g.Pix, vals)
		return g
	}
	writePNG(t, filepath.Join(root, "test/good/000.png"), grey(4))
	writePNG(t, filepath.Join(root, "test/logical_anomalies/000.png"), grey(6))
	writePNG(t, filepath.Join(root, "test/structural_anomalies/000.png"), grey(4))
	writePNG(t, filepath.Join(root, "ground_truth/logical_anomalies/000/000.png"), grey(6, 10, 0, 10, 0, 0, 0))
	writePNG(t, filepath.Join(root, "ground_truth/logical_anomalies/000/001.png"), grey(6, 0, 0, 0, 20, 0, 0))
	writePNG(t, filepath.Join(root, "ground_truth/structural_anomalies/000/000.png"), grey(4, 30, 30, 30, 0))
	putNPY(t, filepath.Join(maps, "good/000.npy"), 4, 1, []float32{0.1, 0.2, 0.6, 0.0})
	putNPY(t, filepath.Join(maps, "logical_anomalies/000.npy"), 6, 1, []float32{0.9, 0.4, 0.8, 0.3, 0.5, 0.05})
	putNPY(t, filepath.Join(maps, "structural_anomalies/000.npy"), 4, 1, []float32{0.7, 0.6, 0.2, 0.1})
	base := []string{"eval", "--maps", maps, "--gt", root, "--threshold", "0.35", "--fpr-limit", "0.3,1"}
	whole, _ := run(t, base...)
	s0, s1 := filepath.Join(dir, "0.state"), filepath.Join(dir, "1.state")
	run(t, append(base, "--shard", "0/2", "--state-out", s0)...)
	run(t, append(base, "--shard", "1/2", "--state-out", s1)...)
	got, _ := run(t, "eval", "merge", s1, s0)
	if got != whole {
		t.Fatalf("merged:\n%s\nwhole:\n%s", got, whole)
	}
	if !strings.Contains(whole, "defects_config.json is missing") || strings.Count(whole, "defects_config.json is missing") != 1 {
		t.Errorf("the missing config should be warned about once:\n%s", whole)
	}
}
