//go:build !js

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/report"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{Name: "report", Summary: "write a job's metric report (HTML, JSON, CSV or Markdown), or compare two jobs", Run: runReport})
	Register(Command{Name: "study", Summary: "run the paper's robustness study (Gaussian noise levels) and write its report", Run: runStudy})
}

// formatOf takes the report format from the output file's extension.
func formatOf(out string) (string, error) {
	switch ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(out), ".")); ext {
	case "html", "htm":
		return "html", nil
	case "json", "csv", "md":
		return ext, nil
	case "markdown":
		return "md", nil
	default:
		return "", fmt.Errorf("output %s: the extension must be .html, .json, .csv or .md", out)
	}
}

// writeAtomic renders into memory and then replaces out, so a failed report never leaves half a file.
func writeAtomic(out string, render func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// benchFile is the part of `rdre bench --json` output the efficiency section uses.
type benchFile struct {
	Model struct {
		InputSize int               `json:"input_size"`
		Device    string            `json:"device"`
		SHA256    string            `json:"sha256"`
		Metadata  map[string]string `json:"metadata"`
	} `json:"model"`
	ORT benchResult `json:"onnxruntime"`
	E2E []float64   `json:"end_to_end_ms"`
}

// efficiencyFrom merges the bench timings into the metadata-derived efficiency of the model.
func efficiencyFrom(base *report.Efficiency, ort benchResult, e2e []float64, e2eSize int, device string, inputSize int, source string) *report.Efficiency {
	e := &report.Efficiency{}
	if base != nil {
		*e = *base
	}
	if e.InputSize == 0 {
		e.InputSize = inputSize
	}
	e.Device, e.Threads = device, ort.Threads
	e.LatencyP50, e.LatencyP95 = ort.P50ms, ort.P95ms
	e.Throughput, e.BestBatch = ort.BestIPS, ort.BestBatch
	if len(e2e) == 2 {
		e.E2EP50, e.E2EP95, e.E2ESize = e2e[0], e2e[1], e2eSize
	}
	if e.Source != "" {
		e.Source += "; "
	}
	e.Source += source
	return e
}

func readBench(path string, in *report.Input) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("bench results: %w", err)
	}
	var b benchFile
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("bench results %s (want the output of rdre bench --json): %w", path, err)
	}
	if b.ORT.Status != "ok" {
		return fmt.Errorf("bench results %s: status %q, want ok", path, b.ORT.Status)
	}
	if b.Model.SHA256 != "" && in.Job.Model != "" && b.Model.SHA256 != in.Job.Model {
		return fmt.Errorf("bench results %s are of model %.12s, the job's model is %.12s", path, b.Model.SHA256, in.Job.Model)
	}
	base := in.Efficiency
	if base == nil {
		base = report.EfficiencyFromMetadata(protocol.ModelInfo{InputSize: b.Model.InputSize, Metadata: b.Model.Metadata})
	}
	// rdre bench times the end-to-end path on a square image of its --image-size (900 by default); the
	// JSON does not say which, so the report does not claim a size.
	in.Efficiency = efficiencyFrom(base, b.ORT, b.E2E, 0, b.Model.Device, b.Model.InputSize, "rdre bench ("+filepath.Base(path)+")")
	return nil
}

func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workspace := fs.String("workspace", "", "workspace file (bbolt); default "+store.DefaultPath())
	job := fs.String("job", "", "job ID (required)")
	out := fs.String("out", "", "output file; the format follows the extension: .html, .json, .csv, .md (required)")
	compare := fs.String("compare", "", "a second job ID: write the two side by side (HTML or Markdown)")
	bench := fs.String("bench", "", "output of 'rdre bench --json' for the same model: adds latency and throughput to the efficiency section")
	noiseJobs := fs.String("noise-jobs", "", "comma-separated job IDs of the same model with input noise: adds the robustness section")
	gallery := fs.Int("gallery", 6, "number of worst false positives and of worst missed defects shown")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *job == "" || *out == "" || fs.NArg() > 0 || *gallery < 0 {
		fmt.Fprintln(stderr, "usage: rdre report --workspace FILE --job ID --out FILE.{html,json,csv,md} [--compare JOB2] [--bench BENCH.json] [--noise-jobs ID,...]")
		return 2
	}
	format, err := formatOf(*out)
	if err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 2
	}
	if *compare != "" && format != "html" && format != "md" {
		fmt.Fprintln(stderr, "report: a comparison is written as .html or .md")
		return 2
	}
	if *workspace == "" {
		*workspace = store.DefaultPath()
	}
	if _, err := os.Stat(*workspace); err != nil {
		fmt.Fprintf(stderr, "report: workspace %s: %v\n", *workspace, err)
		return 1
	}
	st, err := store.Open(*workspace)
	if err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 1
	}
	defer st.Close()

	a, err := report.Load(st, *job)
	if err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 1
	}
	defer a.Close()
	a.GalleryN = *gallery
	if *bench != "" {
		if err := readBench(*bench, a.Input); err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
	}
	if *noiseJobs != "" {
		for _, id := range strings.Split(*noiseJobs, ",") {
			l, err := report.Load(st, strings.TrimSpace(id))
			if err != nil {
				fmt.Fprintf(stderr, "report: noise job: %v\n", err)
				return 1
			}
			l.Close()
			a.Robustness = append(a.Robustness, report.NoiseLevel{Std: l.Job.NoiseStd, Job: l.Job.ID, Result: l.Result})
		}
	}
	if a.Fingerprint.Error != "" {
		slog.Warn("dataset not readable: the report has no gallery and no fingerprint", "reason", a.Fingerprint.Error)
	}
	render := func(w io.Writer) error { return report.Write(w, format, a.Input) }
	if *compare != "" {
		b, err := report.Load(st, *compare)
		if err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
		defer b.Close()
		c, err := report.Compare(a.Input, b.Input)
		if err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
		render = c.WriteHTML
		if format == "md" {
			render = c.WriteMarkdown
		}
	}
	if err := writeAtomic(*out, render); err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "report of job %s written to %s\n", *job, *out)
	return 0
}

func parseStds(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0 && v <= 1) {
			return nil, fmt.Errorf("noise level %q: want a standard deviation in (0, 1] on [0,1] pixel values", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("no noise levels")
	}
	return out, nil
}

func runStudy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "noise" {
		fmt.Fprintln(stderr, "usage: rdre study noise --workspace FILE --model M.onnx --data ROOT [--std 0.001,0.005,0.01,0.05] --out FILE.html")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return 0
		}
		return 2
	}
	fs := flag.NewFlagSet("study noise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workspace := fs.String("workspace", "", "workspace file (bbolt); default "+store.DefaultPath())
	model := fs.String("model", "", "ONNX model file (required)")
	data := fs.String("data", "", "dataset root (required)")
	category := fs.String("category", "", "category of a multi-category dataset")
	stds := fs.String("std", "0.001,0.005,0.01,0.05", "noise standard deviations on [0,1] pixel values, comma-separated")
	baseline := fs.Bool("baseline", true, "also evaluate without noise; the report's main sections show that clean run")
	out := fs.String("out", "", "output file: .html, .json, .csv or .md (required)")
	device := fs.String("device", "auto", "inference device: auto, cpu or cuda")
	threads := fs.Int("threads", 0, "inference threads (0 = ONNX Runtime's default)")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so (default $"+inference.EnvLibrary+", then next to the binary)")
	benchSeconds := fs.Float64("bench-seconds", 1, "time budget per batch size for the efficiency section's latency and throughput (0 skips it)")
	timeout := fs.Duration("timeout", 0, "give up after this long (0 = no limit)")
	if err := fs.Parse(args[1:]); err != nil {
		return parseExit(err)
	}
	if *model == "" || *data == "" || *out == "" || fs.NArg() > 0 || *benchSeconds < 0 {
		fmt.Fprintln(stderr, "usage: rdre study noise --workspace FILE --model M.onnx --data ROOT [--std 0.001,0.005,0.01,0.05] --out FILE.html")
		return 2
	}
	levels, err := parseStds(*stds)
	if err != nil {
		fmt.Fprintf(stderr, "study: %v\n", err)
		return 2
	}
	format, err := formatOf(*out)
	if err != nil {
		fmt.Fprintf(stderr, "study: %v\n", err)
		return 2
	}
	if *workspace == "" {
		*workspace = store.DefaultPath()
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := context.Background()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if err := study(ctx, studyOptions{
		Workspace: *workspace, Model: *model, Data: *data, Category: *category, Levels: levels, Baseline: *baseline,
		Out: *out, Format: format, Device: *device, Threads: *threads, ORTLib: *ortLib, BenchSeconds: *benchSeconds, Log: log,
	}, stdout); err != nil {
		fmt.Fprintf(stderr, "study: %v\n", err)
		return 1
	}
	return 0
}

type studyOptions struct {
	Workspace, Model, Data, Category string
	Levels                           []float64
	Baseline                         bool
	Out, Format                      string
	Device                           string
	Threads                          int
	ORTLib                           string
	BenchSeconds                     float64
	Log                              *slog.Logger
}

// study runs one evaluation job per noise level with the job runner, headless, in the given workspace,
// and writes the report of the clean run (or of the first level) with the robustness section.
func study(ctx context.Context, o studyOptions, stdout io.Writer) error {
	lib, err := inference.LibraryPath(o.ORTLib)
	if err != nil {
		return err
	}
	if err := inference.Init(lib); err != nil {
		return err
	}
	srv, err := server.New(server.Config{Data: []string{o.Data}, Workspace: o.Workspace, Logger: o.Log})
	if err != nil {
		return err
	}
	defer srv.Close()
	ids := srv.DatasetIDs()
	if len(ids) != 1 {
		return fmt.Errorf("dataset %s: indexed %d datasets, want 1", o.Data, len(ids))
	}
	runner := jobs.New(srv, jobs.Options{Device: o.Device, Threads: o.Threads, Log: o.Log})
	defer runner.Close()
	mi, err := runner.AddModel(o.Model)
	if err != nil {
		return err
	}
	stds := o.Levels
	if o.Baseline {
		stds = append([]float64{0}, stds...)
	}
	var jobIDs []string
	for _, s := range stds {
		info, err := runner.Start(protocol.JobStartRequest{Dataset: ids[0], Model: mi.SHA256, Category: o.Category, NoiseStd: s})
		if err != nil {
			return fmt.Errorf("start evaluation with noise %v: %w", s, err)
		}
		t0 := time.Now()
		fmt.Fprintf(stdout, "noise σ=%-6s job %s: %d images ... ", strconv.FormatFloat(s, 'g', -1, 64), info.ID, info.Total)
		st, err := runner.Wait(ctx, info.ID)
		if err != nil {
			runner.Cancel(info.ID)
			return fmt.Errorf("evaluation with noise %v: %w", s, err)
		}
		if st.Job.State != protocol.JobDone {
			return fmt.Errorf("evaluation with noise %v ended %s: %s", s, st.Job.State, st.Job.Error)
		}
		fmt.Fprintf(stdout, "done in %.1fs\n", time.Since(t0).Seconds())
		jobIDs = append(jobIDs, info.ID)
	}

	clean, err := report.Load(srv.Store(), jobIDs[0])
	if err != nil {
		return err
	}
	defer clean.Close()
	for _, id := range jobIDs {
		l, err := report.Load(srv.Store(), id)
		if err != nil {
			return err
		}
		l.Close()
		clean.Robustness = append(clean.Robustness, report.NoiseLevel{Std: l.Job.NoiseStd, Job: id, Result: l.Result})
	}
	if o.BenchSeconds > 0 {
		// Timed after the evaluations, on the same device, with nothing else of this process running.
		m, err := inference.Open(o.Model, inference.Options{Device: o.Device, Threads: o.Threads, Batch: 8})
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		e2eSize := studyImageSide(srv, ids[0])
		res, e2e, err := benchORT(m, 8, time.Duration(o.BenchSeconds*float64(time.Second)), e2eSize)
		info := m.Info()
		m.Close()
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		res.Threads = o.Threads
		clean.Efficiency = efficiencyFrom(clean.Efficiency, res, e2e, e2eSize, info.Device, info.InputSize, fmt.Sprintf("rdre study: ONNX Runtime %s, %.1f s per batch size", info.ORTVersion, o.BenchSeconds))
	}
	if err := writeAtomic(o.Out, func(w io.Writer) error { return report.Write(w, o.Format, clean.Input) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "robustness report (%d levels) written to %s\n", len(jobIDs), o.Out)
	return nil
}

// studyImageSide is the larger side of the dataset's first test image: the end-to-end timing runs on a
// square image of that side, so it reflects the data of the study (0 = unknown, timing skipped).
func studyImageSide(srv *server.Server, id string) int {
	ds, ok := srv.Dataset(id)
	if !ok {
		return 0
	}
	for _, im := range ds.Images() {
		if im.Split == protocol.SplitTest && im.Width > 0 {
			return max(im.Width, im.Height)
		}
	}
	return 0
}
