//go:build !js

package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/training"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{Name: "train", Summary: "train an RD-RE model on a dataset's normal images (PyTorch), export, calibrate, register and evaluate it", Run: runTrain})
}

// trainResult is what rdre train prints on stdout.
type trainResult struct {
	Run        string             `json:"run"`
	State      string             `json:"state"`
	Error      string             `json:"error,omitempty"`
	Dir        string             `json:"dir"`
	Model      string             `json:"model,omitempty"` // ONNX file
	SHA256     string             `json:"sha256,omitempty"`
	ModelCard  string             `json:"modelCard,omitempty"`
	Device     string             `json:"device,omitempty"`
	Elapsed    map[string]float64 `json:"elapsedSeconds,omitempty"`
	WallTime   float64            `json:"wallSeconds"`
	Thresholds map[string]float64 `json:"thresholds,omitempty"`
	Workspace  string             `json:"workspace,omitempty"`
	Job        string             `json:"job,omitempty"`
	Metrics    map[string]any     `json:"metrics,omitempty"`
	Warnings   []string           `json:"warnings,omitempty"`
	// Floor is the comparison with plain RD (rdre preset, unless --no-floor).
	Floor *protocol.TrainFloor `json:"floor,omitempty"`
}

func runTrain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := training.DefaultCPU()
	data := fs.String("data", "", "dataset root (any layout of rdre eval -h): the normal images of its train split are trained on (a dataset without one gives part of its good test images, which its evaluations then leave out)")
	category := fs.String("category", "", "category of a dataset of several")
	layout := fs.String("layout", "", "force the dataset layout (default: detect); one of "+strings.Join(dataset.LayoutNames(), ", "))
	out := fs.String("out", "", "the run's folder: staged images, checkpoint.pt, train.log, previews/, model.onnx, MODEL_CARD.md; a folder with a checkpoint continues from it")
	workspace := fs.String("workspace", "", "workspace file: register the model there (as serve does) and evaluate it on the dataset's test images; without it the model is exported only")
	preset := fs.String("preset", d.Preset, "rdre (RD-RE with the trainer's defaults: no cross-stage fusion, the student's map; models/README.md) or plain-rd (the plain reverse-distillation baseline)")
	teacher := fs.String("teacher", d.Teacher, "mobilenet_v2 (built in: models/teachers) or resnet18 (needs --teacher-weights)")
	teacherWeights := fs.String("teacher-weights", "", "resnet18: torchvision ImageNet state_dict file")
	size := fs.Int("size", d.Size, "input resolution (a multiple of 32)")
	stepsStudent := fs.Int("steps-student", d.StepsStudent, "steps of stage 1 (student)")
	stepsSeg := fs.Int("steps-seg", d.StepsSeg, "steps of stage 2 (segmentation head)")
	batch := fs.Int("batch", d.Batch, "batch size (the paper's is 32: --gpu)")
	fs.IntVar(batch, "batch-size", d.Batch, "same as --batch")
	device := fs.String("device", "auto", "training device: cpu, cuda or auto (cuda when PyTorch sees a GPU)")
	threads := fs.Int("threads", d.Threads, "PyTorch CPU threads")
	anomaly := fs.String("anomaly-source", "", "folder of texture images (e.g. DTD) for the synthetic anomalies; default the built-in texture generator")
	seed := fs.Int("seed", 0, "random seed (a CPU run is deterministic for a seed)")
	quick := fs.Bool("quick", false, "the quick CPU schedule (128 px, 800 + 400 steps: about 5 minutes on 2 idle cores); explicit flags still win")
	gpu := fs.Bool("gpu", false, "the GPU preset: the paper's schedule (256 px, batch 32, 2000 + 1000 steps, device cuda); explicit flags still win")
	randomTeacher := fs.Bool("random-teacher", false, "random-initialised teacher (tests only: fast, useless model)")
	logEvery := fs.Int("log-every", d.LogEvery, "log (and stream progress) every N steps")
	ckptEvery := fs.Int("ckpt-every", d.CkptEvery, "write the checkpoint every N steps")
	previewEvery := fs.Int("preview-every", d.PreviewEvery, "write a preview of synthetic training samples every N steps (-1: none)")
	python := fs.String("python", "", "Python with PyTorch (default "+training.DefaultPython+", then python3 on PATH)")
	models := fs.String("models", "", "the checkout holding models/ (default: found from the working directory or the binary)")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so for calibration and evaluation (default $RDRE_ORT_LIB, then next to the binary)")
	realMasks := fs.Bool("real-masks", false, "also train the segmentation stage on the defective images whose masks are drawn in --workspace (fine-tuning; evaluations of the model leave them out)")
	realImages := fs.String("real-images", "", "file of image IDs (one per line) whose masks (the workspace's, else the dataset's) also train the segmentation stage")
	noFloor := fs.Bool("no-floor", false, "rdre preset: do not train plain RD beside it (the floor: every fifth normal image held out; on synthetic anomalies laid on them, the image score is plain RD's where it does better and both models' combined otherwise, the anomaly map the better one's; about a third more time)")
	noEval := fs.Bool("no-eval", false, "register but do not evaluate")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *data == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "train: --data DIR and --out DIR are required (rdre train -h)")
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	opt := protocol.TrainOptions{
		Preset: *preset, Teacher: *teacher, Size: *size, StepsStudent: *stepsStudent, StepsSeg: *stepsSeg, Batch: *batch,
		Device: *device, Threads: *threads, Seed: *seed, RandomTeacher: *randomTeacher,
		LogEvery: *logEvery, CkptEvery: *ckptEvery, PreviewEvery: *previewEvery, NoFloor: *noFloor,
	}
	if *quick && *gpu {
		fmt.Fprintln(stderr, "train: --quick and --gpu exclude each other")
		return 2
	}
	if *quick || *gpu {
		g := training.DefaultGPU()
		if *quick {
			g = training.QuickCPU()
		}
		for name, apply := range map[string]func(){
			"size": func() { opt.Size = g.Size }, "steps-student": func() { opt.StepsStudent = g.StepsStudent },
			"steps-seg": func() { opt.StepsSeg = g.StepsSeg }, "batch": func() { opt.Batch = g.Batch },
			"device": func() { opt.Device = g.Device }, "threads": func() { opt.Threads = g.Threads },
		} {
			if !set[name] && !(name == "batch" && set["batch-size"]) {
				apply()
			}
		}
	}
	if *preset == protocol.PresetPlainRD && !set["steps-seg"] {
		opt.StepsSeg = 0
	}
	opt.RealMasks = *realMasks
	if *realImages != "" {
		raw, err := os.ReadFile(*realImages)
		if err != nil {
			fmt.Fprintf(stderr, "train: --real-images: %v\n", err)
			return 2
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				opt.RealImages = append(opt.RealImages, l)
			}
		}
	}
	var textures []string
	if *anomaly != "" && *anomaly != protocol.AnomalyBuiltin {
		abs, err := filepath.Abs(*anomaly)
		if err != nil {
			fmt.Fprintf(stderr, "train: --anomaly-source: %v\n", err)
			return 2
		}
		textures = []string{abs}
		opt.AnomalySource = training.TextureID(abs)
	}
	if *teacherWeights != "" {
		abs, err := filepath.Abs(*teacherWeights)
		if err != nil {
			fmt.Fprintf(stderr, "train: --teacher-weights: %v\n", err)
			return 2
		}
		*teacherWeights = abs
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ws := *workspace
	if ws == "" {
		tmp, err := os.MkdirTemp("", "rdre-train-")
		if err != nil {
			fmt.Fprintf(stderr, "train: %v\n", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		ws = filepath.Join(tmp, "workspace.db")
	}
	srv, err := server.New(server.Config{Data: []string{*data}, Layout: *layout, Workspace: ws, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "train: %v\n", err)
		return 1
	}
	defer srv.Close()
	ortOK := optionalORT(*ortLib, log)
	var runner *jobs.Runner
	noRegister := ""
	switch {
	case *workspace == "":
		noRegister = "no --workspace was given"
	case !ortOK:
		noRegister = "ONNX Runtime was not found (run `make ort`, or pass --ort-lib)"
	default:
		runner = jobs.New(srv, jobs.Options{Device: inferDevice(*device), Threads: *threads, Log: log})
		defer runner.Close()
	}
	start := time.Now()
	var progressMu sync.Mutex
	lastLine := ""
	progress := func(info protocol.TrainInfo, line string) {
		if *quiet || line != "" {
			return
		}
		var text string
		switch {
		case (info.Stage == protocol.StageStudent || info.Stage == protocol.StageSeg || info.Stage == protocol.StageBaseline) && info.Total > 0:
			eta := ""
			if info.ETA >= 0 {
				eta = fmt.Sprintf(" eta %s", (time.Duration(info.ETA) * time.Second).Round(time.Second))
			}
			text = fmt.Sprintf("train: %s step %d/%d loss %.5f %.2f s/step%s", info.Stage, info.Step, info.Total, info.Loss, info.SecPerStep, eta)
		case info.Stage != "":
			text = "train: " + info.Stage
		}
		progressMu.Lock()
		defer progressMu.Unlock()
		if text != "" && text != lastLine {
			lastLine = text
			fmt.Fprintln(stderr, text)
		}
	}
	tr := training.New(srv, training.Options{
		Python: *python, Repo: *models, Jobs: runner, ResNet18Weights: *teacherWeights, Textures: textures,
		InferDevice: inferDevice(*device), InferThreads: *threads, Progress: progress, NoRegister: noRegister, Log: log,
	})
	defer tr.Close()
	ids := srv.DatasetIDs()
	req := protocol.TrainStartRequest{Dataset: ids[0], Category: *category, Options: opt, NoEvaluate: *noEval || runner == nil}
	info, err := tr.StartIn(req, *out)
	if err != nil {
		fmt.Fprintf(stderr, "train: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	info, err = tr.Wait(ctx, info.ID)
	if err != nil { // interrupted: stop the trainer (it saves its checkpoint) and report
		fmt.Fprintln(stderr, "train: stopping; the checkpoint stays in", *out, "(run the same command to continue)")
		info, _ = tr.Cancel(info.ID)
	}
	res := trainResult{Run: info.ID, State: info.State, Error: info.Error, Dir: info.Dir, Device: info.Device, Elapsed: info.Elapsed,
		Thresholds: info.Thresholds, Job: info.Job, Warnings: info.Warnings, SHA256: info.Model, Floor: info.Floor}
	if info.State == protocol.TrainDone {
		res.Model = filepath.Join(info.Dir, "model.onnx")
		res.ModelCard = filepath.Join(info.Dir, "MODEL_CARD.md")
		if *workspace != "" {
			res.Workspace = *workspace
		}
	}
	if info.Job != "" && runner != nil && ctx.Err() == nil {
		if st, err := runner.Wait(ctx, info.Job); err == nil {
			if st.Job.State != protocol.JobDone {
				res.Warnings = append(res.Warnings, fmt.Sprintf("evaluation %s ended %s: %s", info.Job, st.Job.State, st.Job.Error))
			} else {
				var all map[string]any
				if json.Unmarshal(st.Result, &all) == nil {
					res.Metrics = map[string]any{}
					for _, k := range []string{"image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "pixel_aupro", "image_f1_max", "pixel_f1_max"} {
						if v, ok := all[k]; ok {
							res.Metrics[k] = v
						}
					}
					res.Metrics["images"] = st.Job.Total
					if len(st.Job.Excluded) > 0 {
						res.Metrics["excluded"] = len(st.Job.Excluded)
					}
				}
			}
		}
	}
	res.WallTime = time.Since(start).Seconds()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(res)
	switch info.State {
	case protocol.TrainDone:
		return 0
	case protocol.TrainCancelled:
		return 130
	}
	return 1
}
