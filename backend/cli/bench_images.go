//go:build !js

package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/shared/protocol"
)

// `rdre bench --images DIR --model M` measures the image path side by side in one run: `rdre infer` on
// the test split of DIR against the Python script that runs the same model in the same ONNX Runtime
// library (python3 -m models.predict, which loads build/ort/libonnxruntime.so.1 through ctypes), and,
// with --baseline, another rdre binary (an older build); then cold and warm thumbnails of the train and
// test images through dataset.Thumbnail. Each side runs as a child process, in turns, --rounds times;
// the report gives medians of wall time and of CPU time (user + system of the child), which is steadier
// than wall time on a shared machine, and their ratios.

// imageBench is the JSON form of the report.
type imageBench struct {
	Data       string                `json:"data"`
	Model      string                `json:"model"`
	Images     int                   `json:"images"`
	Threads    int                   `json:"threads"`
	Rounds     int                   `json:"rounds"`
	Sides      map[string]*benchSide `json:"sides"`
	ScoreDiff  *float64              `json:"max_score_diff_vs_python,omitempty"`
	Thumbnails *thumbBench           `json:"thumbnails,omitempty"`
}

type benchSide struct {
	Command string    `json:"command"`
	Wall    []float64 `json:"wall_s"`
	CPU     []float64 `json:"cpu_s"`
	WallMed float64   `json:"wall_median_s"`
	CPUMed  float64   `json:"cpu_median_s"`
	IPS     float64   `json:"images_per_s"`
	IPCPU   float64   `json:"images_per_cpu_s"`
	Error   string    `json:"error,omitempty"`
	scores  string
}

type thumbBench struct {
	Images  int     `json:"images"`
	Size    int     `json:"size"`
	Workers int     `json:"workers"`
	Cold    timing  `json:"cold"`
	Disk    timing  `json:"warm_disk"`   // a new Dataset: read from the disk cache
	Memory  timing  `json:"warm_memory"` // the same Dataset again: the in-memory LRU
	DiskMB  float64 `json:"disk_cache_mb"`
}

type timing struct {
	Wall float64 `json:"wall_s"`
	CPU  float64 `json:"cpu_s"`
}

type imageBenchOptions struct {
	data, model, ortLib, python, baseline string
	threads, rounds, thumbSize, workers   int
	jsonOut, noInfer, noThumbs            bool
}

func runImageBench(o imageBenchOptions, stdout, stderr io.Writer) int {
	ds, err := dataset.Open(o.data)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	var test int
	var grid []string
	for _, im := range ds.Images() {
		if im.Split == protocol.SplitTest {
			test++
		}
		if im.Split == protocol.SplitTest || im.Split == protocol.SplitTrain {
			grid = append(grid, im.ID)
		}
	}
	ds.Close()
	rep := imageBench{Data: o.data, Model: o.model, Images: test, Threads: o.threads, Rounds: o.rounds, Sides: map[string]*benchSide{}}

	if !o.noThumbs {
		tb, err := benchThumbnails(o.data, grid, o.thumbSize, o.workers)
		if err != nil {
			fmt.Fprintf(stderr, "bench: thumbnails: %v\n", err)
			return 1
		}
		rep.Thumbnails = tb
	}
	if !o.noInfer {
		if o.model == "" {
			fmt.Fprintln(stderr, "bench: --images needs --model for the inference comparison (or --no-infer)")
			return 2
		}
		if err := benchInfer(&rep, o, stderr); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		enc.Encode(rep)
		return 0
	}
	printImageBench(stdout, rep)
	return 0
}

// benchThumbnails makes the thumbnails of ids three times, as a grid of a browser does (workers requests
// at a time): with an empty disk cache, from a new Dataset over the filled one, and from the same Dataset.
func benchThumbnails(root string, ids []string, size, workers int) (*thumbBench, error) {
	tmp, err := os.MkdirTemp("", "rdre-bench-thumbs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dataset.SetThumbCache(tmp, 0)
	defer dataset.SetThumbCache("", 0)
	tb := &thumbBench{Images: len(ids), Size: size, Workers: workers}
	pass := func(d *dataset.Dataset) (timing, error) {
		t0, c0 := time.Now(), processCPU()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		next := make(chan string)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range next {
					if _, err := d.Thumbnail(id, size); err != nil {
						mu.Lock()
						first = cmpErr(first, err)
						mu.Unlock()
					}
				}
			}()
		}
		for _, id := range ids {
			next <- id
		}
		close(next)
		wg.Wait()
		return timing{Wall: time.Since(t0).Seconds(), CPU: (processCPU() - c0).Seconds()}, first
	}
	d1, err := dataset.Open(root)
	if err != nil {
		return nil, err
	}
	defer d1.Close()
	if tb.Cold, err = pass(d1); err != nil {
		return nil, err
	}
	d2, err := dataset.Open(root)
	if err != nil {
		return nil, err
	}
	defer d2.Close()
	if tb.Disk, err = pass(d2); err != nil {
		return nil, err
	}
	if tb.Memory, err = pass(d2); err != nil {
		return nil, err
	}
	var n int64
	filepath.Walk(tmp, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	tb.DiskMB = float64(n) / (1 << 20)
	return tb, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// benchInfer runs rdre infer (this binary and --baseline) and models.predict in turns.
func benchInfer(rep *imageBench, o imageBenchOptions, stderr io.Writer) error {
	lib, err := inference.LibraryPath(o.ortLib)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	repo, err := findRepoRoot()
	if err != nil {
		return err
	}
	model, err := filepath.Abs(o.model)
	if err != nil {
		return err
	}
	data, err := filepath.Abs(o.data)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "rdre-bench-infer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	threads := strconv.Itoa(o.threads)
	type side struct {
		name string
		cmd  func(out string) *exec.Cmd
	}
	rdre := func(bin string) func(string) *exec.Cmd {
		return func(out string) *exec.Cmd {
			return exec.Command(bin, "infer", "--model", model, "--data", data, "--out", out, "--device", "cpu",
				"--threads", threads, "--ort-lib", lib, "--quiet")
		}
	}
	sides := []side{{"rdre infer", rdre(self)}}
	if o.baseline != "" {
		sides = append(sides, side{"baseline rdre infer", rdre(o.baseline)})
	}
	sides = append(sides, side{"python models.predict (ONNX Runtime via ctypes)", func(out string) *exec.Cmd {
		c := exec.Command(o.python, "-m", "models.predict", "--model", model, "--data", data, "--out", out, "--threads", threads)
		c.Dir = repo
		c.Env = append(os.Environ(), inference.EnvLibrary+"="+lib)
		return c
	}})
	for _, s := range sides {
		rep.Sides[s.name] = &benchSide{Command: strings.Join(s.cmd("OUT").Args, " ")}
	}
	for r := 0; r < o.rounds; r++ {
		// Alternate the order, so a drift in the machine's load does not favour one side.
		order := make([]side, len(sides))
		copy(order, sides)
		if r%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for i, s := range order {
			res := rep.Sides[s.name]
			if res.Error != "" {
				continue
			}
			out := filepath.Join(tmp, fmt.Sprintf("r%d-%d", r, i))
			cmd := s.cmd(out)
			var errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.Discard, &errb
			t0 := time.Now()
			err := cmd.Run()
			wall := time.Since(t0).Seconds()
			if err != nil {
				res.Error = fmt.Sprintf("%v: %s", err, lastLine(errb.String()))
				fmt.Fprintf(stderr, "bench: %s: %s\n", s.name, res.Error)
				continue
			}
			cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
			res.Wall, res.CPU = append(res.Wall, wall), append(res.CPU, cpu)
			res.scores = filepath.Join(out, "scores.json")
		}
	}
	for _, res := range rep.Sides {
		if len(res.Wall) == 0 {
			continue
		}
		res.WallMed, res.CPUMed = median(res.Wall), median(res.CPU)
		res.IPS, res.IPCPU = float64(rep.Images)/res.WallMed, float64(rep.Images)/res.CPUMed
	}
	g, p := rep.Sides[sides[0].name], rep.Sides[sides[len(sides)-1].name]
	if g.scores != "" && p.scores != "" {
		if d, err := maxScoreDiff(g.scores, p.scores); err == nil {
			rep.ScoreDiff = &d
		} else {
			fmt.Fprintf(stderr, "bench: compare scores: %v\n", err)
		}
	}
	return nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxScoreDiff(a, b string) (float64, error) {
	read := func(p string) (map[string]float64, error) {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var m map[string]float64
		return m, json.Unmarshal(raw, &m)
	}
	ma, err := read(a)
	if err != nil {
		return 0, err
	}
	mb, err := read(b)
	if err != nil {
		return 0, err
	}
	if len(ma) != len(mb) {
		return 0, fmt.Errorf("%d scores against %d", len(ma), len(mb))
	}
	d := 0.0
	for k, v := range ma {
		w, ok := mb[k]
		if !ok {
			return 0, fmt.Errorf("%s has no score for %s", b, k)
		}
		d = math.Max(d, math.Abs(v-w))
	}
	return d, nil
}

// findRepoRoot finds the folder holding models/predict.py: next to the binary (bin/..) or above the
// working directory.
func findRepoRoot() (string, error) {
	var cands []string
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), ".."))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			cands = append(cands, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "models", "predict.py")); err == nil {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("models/predict.py not found next to the binary or above the working directory")
}

func printImageBench(stdout io.Writer, rep imageBench) {
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "data       %s\n", rep.Data)
	if t := rep.Thumbnails; t != nil {
		fmt.Fprintf(w, "\nthumbnails %d images at %d px, %d requests at a time (dataset.Thumbnail)\n", t.Images, t.Size, t.Workers)
		fmt.Fprintf(w, "  cold (empty caches)          wall %6.2f s  cpu %6.2f s\n", t.Cold.Wall, t.Cold.CPU)
		fmt.Fprintf(w, "  warm, new Dataset (disk)     wall %6.3f s  cpu %6.3f s  (%.0fx faster wall)\n", t.Disk.Wall, t.Disk.CPU, t.Cold.Wall/math.Max(t.Disk.Wall, 1e-6))
		fmt.Fprintf(w, "  warm, same Dataset (memory)  wall %6.3f s  cpu %6.3f s\n", t.Memory.Wall, t.Memory.CPU)
		fmt.Fprintf(w, "  disk cache %.1f MB\n", t.DiskMB)
	}
	if len(rep.Sides) == 0 {
		return
	}
	fmt.Fprintf(w, "\ninference  %s, %d test images, --threads %d, median of %d rounds (process wall and user+system CPU)\n", rep.Model, rep.Images, rep.Threads, rep.Rounds)
	names := make([]string, 0, len(rep.Sides))
	for n := range rep.Sides {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := rep.Sides[n]
		if s.Error != "" {
			fmt.Fprintf(w, "  %-48s failed: %s\n", n, s.Error)
			continue
		}
		fmt.Fprintf(w, "  %-48s wall %6.2f s (%5.1f img/s)  cpu %6.2f s (%5.1f img/cpu-s)  runs wall %s cpu %s\n",
			n, s.WallMed, s.IPS, s.CPUMed, s.IPCPU, floats(s.Wall), floats(s.CPU))
	}
	g := rep.Sides["rdre infer"]
	for _, n := range names {
		o := rep.Sides[n]
		if n == "rdre infer" || g == nil || g.WallMed == 0 || o.WallMed == 0 {
			continue
		}
		fmt.Fprintf(w, "  rdre infer vs %-34s throughput (wall) %.2fx, CPU per image %.2fx\n", n+":", o.WallMed/g.WallMed, o.CPUMed/g.CPUMed)
	}
	if rep.ScoreDiff != nil {
		fmt.Fprintf(w, "  max |score rdre - score python| = %.3g\n", *rep.ScoreDiff)
	}
}

func floats(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
