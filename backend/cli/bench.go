//go:build !js

package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/oip"
)

func init() {
	Register(Command{Name: "bench", Summary: "time a model: latency, throughput, memory, vs PyTorch; --images DIR: the image path vs Python", Run: runBench})
}

// benchResult is what one side (ONNX Runtime here, PyTorch in models/bench_torch.py) measured.
type benchResult struct {
	Status     string             `json:"status"`
	Reason     string             `json:"reason,omitempty"`
	Weights    string             `json:"weights,omitempty"`
	P50ms      float64            `json:"p50_ms"`
	P95ms      float64            `json:"p95_ms"`
	Throughput map[string]float64 `json:"throughput"`
	BestBatch  int                `json:"best_batch"`
	BestIPS    float64            `json:"best_ips"`
	PeakRSSMB  float64            `json:"peak_rss_mb"`
	Threads    int                `json:"threads"`
	Torch      string             `json:"torch,omitempty"`
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (this or --model-url is required)")
	remote := addRemoteFlags(fs) // --model-url: time a remote model (remote.go)
	device := fs.String("device", "cpu", "inference device: auto, cpu or cuda")
	threads := fs.Int("threads", 0, "intra-op threads for ONNX Runtime and PyTorch (0 = their defaults)")
	maxBatch := fs.Int("batch", 8, "largest batch size tried for throughput (powers of two up to it)")
	seconds := fs.Float64("seconds", 2, "time budget per measurement")
	e2eSize := fs.Int("image-size", 900, "side of the synthetic image for the end-to-end (decode excluded) latency; 0 skips it")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so.1 (default $"+inference.EnvLibrary+", then next to the binary)")
	checkpoint := fs.String("checkpoint", "", "PyTorch checkpoint of the same model, for the PyTorch comparison")
	torchMode := fs.String("torch", "auto", "PyTorch comparison: auto (with --checkpoint, else skipped), random (architecture from the ONNX metadata, random weights), off")
	python := fs.String("python", "/usr/bin/python3", "Python with torch for the PyTorch side")
	script := fs.String("torch-script", "", "path of models/bench_torch.py (default: found next to the binary or in the working tree)")
	jsonOut := fs.Bool("json", false, "print the results as one JSON object instead of text")
	images := fs.String("images", "", "dataset folder: instead of timing the network, time the image path side by side: 'rdre infer' on its test split against python3 -m models.predict (the same model in the same ONNX Runtime library), then cold and warm thumbnails of its train and test images")
	rounds := fs.Int("rounds", 3, "--images: runs of each side (medians are reported)")
	baseline := fs.String("baseline", "", "--images: another rdre binary (an older build) to time beside this one")
	thumbSize := fs.Int("thumb-size", 256, "--images: thumbnail size")
	thumbWorkers := fs.Int("thumb-workers", 6, "--images: thumbnails requested at a time (a browser opens 6 connections per host)")
	noInfer := fs.Bool("no-infer", false, "--images: skip the inference comparison")
	noThumbs := fs.Bool("no-thumbs", false, "--images: skip the thumbnails")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *images != "" {
		if fs.NArg() > 0 || *rounds < 1 || *thumbWorkers < 1 || *thumbSize < dataset.MinThumbnail || *thumbSize > dataset.MaxThumbnail {
			fmt.Fprintln(stderr, "usage: rdre bench --images DIR --model FILE.onnx [--threads 1] [--rounds 3] [--baseline OLD_RDRE] [--no-infer] [--no-thumbs] [--json]")
			return 2
		}
		// models.predict runs ONNX Runtime on one intra-op thread: the same here unless --threads says otherwise.
		n := 1
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "threads" {
				n = *threads
			}
		})
		return runImageBench(imageBenchOptions{data: *images, model: *model, ortLib: *ortLib, python: *python, baseline: *baseline,
			threads: n, rounds: *rounds, thumbSize: *thumbSize, workers: *thumbWorkers, jsonOut: *jsonOut, noInfer: *noInfer, noThumbs: *noThumbs},
			stdout, stderr)
	}
	if (*model == "") == (len(remote.urls) == 0) || fs.NArg() > 0 || *maxBatch < 1 || *seconds <= 0 {
		fmt.Fprintln(stderr, "usage: rdre bench --model FILE.onnx [--device cpu|cuda|auto] [--threads N] [--batch N] [--checkpoint CKPT | --torch random]")
		return 2
	}
	switch *torchMode {
	case "auto", "random", "off":
	default:
		fmt.Fprintf(stderr, "bench: --torch must be auto, random or off, got %q\n", *torchMode)
		return 2
	}
	var m inference.Predictor
	var err error
	if len(remote.urls) > 0 { // a remote model: requests of up to --batch images
		m, err = oip.Open(remote.urls, remote.options(*maxBatch, slog.Default()))
	} else {
		var lib string
		if lib, err = inference.LibraryPath(*ortLib); err == nil {
			err = inference.Init(lib)
		}
		if err == nil {
			m, err = inference.Open(*model, inference.Options{Device: *device, Threads: *threads, Batch: *maxBatch})
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer m.Close()
	info := m.Info()
	budget := time.Duration(*seconds * float64(time.Second))

	ortRes, e2e, err := benchORT(m, *maxBatch, budget, *e2eSize)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	ortRes.Threads = *threads

	torchRes := benchResult{Status: "skipped"}
	switch {
	case *torchMode == "off":
		torchRes.Reason = "--torch off"
	case len(remote.urls) > 0:
		torchRes.Reason = "a remote model (--model-url) has no file here to compare with"
	case *torchMode == "auto" && *checkpoint == "":
		torchRes.Reason = "no --checkpoint given (an ONNX graph cannot be re-run in PyTorch); pass --checkpoint, or --torch random to time the architecture named in the metadata with random weights"
	default:
		torchRes, err = benchTorch(*python, *script, info.Path, *checkpoint, *torchMode == "random", *threads, *maxBatch, *seconds)
		if err != nil {
			torchRes = benchResult{Status: "failed", Reason: err.Error()}
		}
	}

	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		enc.Encode(map[string]any{"model": info, "onnxruntime": ortRes, "end_to_end_ms": e2e, "pytorch": torchRes})
		return 0
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "model      %s\n           sha256 %.16s, input %dx%d, teacher %q, category %q\n", info.Path, info.SHA256, info.InputSize, info.InputSize, info.Teacher, info.Category)
	fmt.Fprintf(w, "device     %s (%s), threads %s, ONNX Runtime %s\n", info.Device, info.ShortDeviceReason(), threadsString(*threads), info.ORTVersion)
	fmt.Fprintf(w, "\nONNX Runtime (this binary)\n")
	printSide(w, ortRes)
	if e2e != nil {
		fmt.Fprintf(w, "  end-to-end batch 1 on a %dx%d image (pre-process + run + map back): p50 %.1f ms, p95 %.1f ms\n", *e2eSize, *e2eSize, e2e[0], e2e[1])
	}
	fmt.Fprintf(w, "\nPyTorch (%s)\n", *python)
	if torchRes.Status != "ok" {
		fmt.Fprintf(w, "  %s: %s\n", torchRes.Status, torchRes.Reason)
		return 0
	}
	fmt.Fprintf(w, "  weights: %s; torch %s, %d threads\n", torchRes.Weights, torchRes.Torch, torchRes.Threads)
	printSide(w, torchRes)
	fmt.Fprintf(w, "\nratio      latency p50 PyTorch/ORT %.2fx, best throughput ORT/PyTorch %.2fx, peak RSS ORT/PyTorch %.2fx\n",
		torchRes.P50ms/ortRes.P50ms, ortRes.BestIPS/torchRes.BestIPS, ortRes.PeakRSSMB/torchRes.PeakRSSMB)
	return 0
}

func threadsString(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

func printSide(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "  latency batch 1 (network only): p50 %.1f ms, p95 %.1f ms (%.1f FPS)\n", r.P50ms, r.P95ms, 1000/r.P50ms)
	keys := make([]int, 0, len(r.Throughput))
	for k := range r.Throughput {
		if n, err := strconv.Atoi(k); err == nil {
			keys = append(keys, n)
		}
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("b%d %.1f", k, r.Throughput[strconv.Itoa(k)])
	}
	fmt.Fprintf(w, "  throughput images/s: %s; best %.1f at batch %d\n", strings.Join(parts, ", "), r.BestIPS, r.BestBatch)
	fmt.Fprintf(w, "  peak RSS %.0f MB (whole process)\n", r.PeakRSSMB)
}

// percentiles uses the same definition as models/bench_torch.py (sorted[n/2], sorted[int(0.95 n)]).
func percentiles(ms []float64) (p50, p95 float64) {
	sort.Float64s(ms)
	return ms[len(ms)/2], ms[min(len(ms)-1, int(0.95*float64(len(ms))))]
}

// timeRuns runs f at least 5 times and until the budget is spent; it returns the durations in ms.
func timeRuns(budget time.Duration, f func() error) ([]float64, error) {
	var ms []float64
	start := time.Now()
	for len(ms) < 5 || time.Since(start) < budget {
		t0 := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
	}
	return ms, nil
}

func benchORT(m inference.Predictor, maxBatch int, budget time.Duration, e2eSize int) (benchResult, []float64, error) {
	S := m.Info().InputSize
	r := rand.New(rand.NewSource(0))
	res := benchResult{Status: "ok", Throughput: map[string]float64{}}
	for b := 1; b <= maxBatch; b *= 2 {
		in := make([]float32, b*3*S*S)
		for i := range in {
			in[i] = float32(r.NormFloat64())
		}
		run := func() error { _, _, _, err := m.RunTensor(in, b); return err }
		for i := 0; i < 2; i++ { // warm-up: first runs allocate arenas and pick kernels
			if err := run(); err != nil {
				return res, nil, err
			}
		}
		ms, err := timeRuns(budget, run)
		if err != nil {
			return res, nil, err
		}
		total := 0.0
		for _, v := range ms {
			total += v
		}
		ips := float64(b*len(ms)) / (total / 1000)
		res.Throughput[strconv.Itoa(b)] = ips
		if ips > res.BestIPS {
			res.BestIPS, res.BestBatch = ips, b
		}
		if b == 1 {
			res.P50ms, res.P95ms = percentiles(ms)
		}
	}
	var e2e []float64
	if e2eSize > 0 {
		img := image.NewNRGBA(image.Rect(0, 0, e2eSize, e2eSize))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(r.Intn(256)), uint8(r.Intn(256)), uint8(r.Intn(256)), 255
		}
		img.Set(0, 0, color.NRGBA{255, 0, 0, 255})
		ms, err := timeRuns(budget, func() error { _, err := m.Predict([]image.Image{img}); return err })
		if err != nil {
			return res, nil, err
		}
		p50, p95 := percentiles(ms)
		e2e = []float64{p50, p95}
	}
	res.PeakRSSMB = peakRSSMB()
	return res, e2e, nil
}

// peakRSSMB reads the process's high-water resident set (VmHWM) from /proc; 0 where there is none.
func peakRSSMB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// findTorchScript looks for models/bench_torch.py next to the binary (bin/../models) and in the
// working directory's tree.
func findTorchScript(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	var cands []string
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "..", "models", "bench_torch.py"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			cands = append(cands, filepath.Join(d, "models", "bench_torch.py"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("models/bench_torch.py not found next to the binary or above the working directory; pass --torch-script")
}

func benchTorch(python, script, model, checkpoint string, random bool, threads, maxBatch int, seconds float64) (benchResult, error) {
	var res benchResult
	path, err := findTorchScript(script)
	if err != nil {
		return res, err
	}
	var batches []string
	for b := 1; b <= maxBatch; b *= 2 {
		batches = append(batches, strconv.Itoa(b))
	}
	args := []string{path, "--onnx", model, "--threads", strconv.Itoa(threads), "--batches", strings.Join(batches, ","),
		"--seconds", strconv.FormatFloat(seconds, 'f', -1, 64)}
	if checkpoint != "" {
		args = append(args, "--checkpoint", checkpoint)
	} else if random {
		args = append(args, "--random-weights")
	}
	cmd := exec.Command(python, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("%s %s: %v: %s", python, path, err, lastLine(errb.String()))
	}
	line := lastLine(out.String())
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return res, fmt.Errorf("%s printed %q, not a JSON result: %v", path, line, err)
	}
	if res.Status == "ok" && (res.P50ms <= 0 || res.BestIPS <= 0) {
		return res, fmt.Errorf("%s returned an incomplete result: %s", path, line)
	}
	return res, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
