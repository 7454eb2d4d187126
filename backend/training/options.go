//go:build !js

package training

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/rdre-studio/studio/shared/protocol"
)

// Default CPU settings: a useful model in about 15 minutes on 2 cores for a category of about 200
// normal images. Measured here (2 shared cores, 2 threads, MVTec AD bottle, 108 training images, the
// machine mostly idle): 256 px, 500 + 250 steps of batch 8 took 14.9 min from start to the end of the
// evaluation (student 1.0 s/step, segmentation 0.4 s/step) and scored image AUROC 100, pixel AUROC 98.97,
// AP 87.5, AUPRO 96.5. The quick schedule (QuickCPU: 128 px, 800 + 400 steps, a quarter of the cost per
// step) took 4.7 min and scored 99.68 / 98.48 / 78.3 / 92.7; it is the choice when the cores are busy.
const (
	cpuSize         = 256
	cpuStepsStudent = 500
	cpuStepsSeg     = 250
	cpuBatch        = 8
	defaultLogEvery = 10
	defaultCkpt     = 50
	defaultPreview  = 200
)

// DefaultCPU returns the settings a run takes when a client leaves them at zero.
func DefaultCPU() protocol.TrainOptions {
	return protocol.TrainOptions{
		Preset: protocol.PresetRDRE, Teacher: "mobilenet_v2", Size: cpuSize, StepsStudent: cpuStepsStudent,
		StepsSeg: cpuStepsSeg, Batch: cpuBatch, Device: "auto", Threads: defaultThreads(),
		AnomalySource: protocol.AnomalyBuiltin, LogEvery: defaultLogEvery, CkptEvery: defaultCkpt, PreviewEvery: defaultPreview,
	}
}

// QuickCPU is the quick schedule: 128 px, 800 + 400 steps (about 5 minutes on 2 idle cores).
func QuickCPU() protocol.TrainOptions {
	o := DefaultCPU()
	o.Size, o.StepsStudent, o.StepsSeg = 128, 800, 400
	return o
}

// DefaultGPU is the paper's schedule for a GPU: 256 px, batch 32, 2000 + 1000 steps (models/README.md).
func DefaultGPU() protocol.TrainOptions {
	o := DefaultCPU()
	o.Size, o.StepsStudent, o.StepsSeg, o.Batch, o.Device, o.Threads = 256, 2000, 1000, 32, "cuda", min(8, runtime.NumCPU())
	return o
}

func defaultThreads() int { return max(1, min(8, runtime.NumCPU())) }

// resolveOptions fills in defaults and validates o.
func (r *Runner) resolveOptions(o protocol.TrainOptions) (protocol.TrainOptions, error) {
	d := DefaultCPU()
	if o.Preset == "" {
		o.Preset = d.Preset
	}
	if o.Preset != protocol.PresetRDRE && o.Preset != protocol.PresetPlainRD {
		return o, fmt.Errorf("preset %q: want %s or %s", o.Preset, protocol.PresetRDRE, protocol.PresetPlainRD)
	}
	if o.Teacher == "" {
		o.Teacher = d.Teacher
	}
	switch o.Teacher {
	case "mobilenet_v2":
	case "resnet18":
		if r.opt.ResNet18Weights == "" && !o.RandomTeacher {
			return o, fmt.Errorf("teacher resnet18 needs ImageNet weights: start the server with --resnet18-weights FILE (a torchvision resnet18 state_dict)")
		}
	default:
		return o, fmt.Errorf("teacher %q: want mobilenet_v2 or resnet18", o.Teacher)
	}
	if o.Size == 0 {
		o.Size = d.Size
	}
	if o.Size < 32 || o.Size > 1024 || o.Size%32 != 0 {
		return o, fmt.Errorf("size %d: want a multiple of 32 between 32 and 1024", o.Size)
	}
	if o.StepsStudent == 0 {
		o.StepsStudent = d.StepsStudent
	}
	if o.Preset == protocol.PresetPlainRD {
		o.StepsSeg = 0 // plain RD has no segmentation stage
	} else if o.StepsSeg == 0 {
		o.StepsSeg = d.StepsSeg
	}
	if o.StepsStudent < 1 || o.StepsStudent > 1_000_000 || o.StepsSeg < 0 || o.StepsSeg > 1_000_000 {
		return o, fmt.Errorf("steps %d + %d: want 1..1000000 student steps and 0..1000000 segmentation steps", o.StepsStudent, o.StepsSeg)
	}
	if o.Batch == 0 {
		o.Batch = d.Batch
	}
	if o.Batch < 1 || o.Batch > 512 {
		return o, fmt.Errorf("batch %d: want 1..512", o.Batch)
	}
	if o.Device == "" {
		o.Device = d.Device
	}
	if o.Device != "auto" && o.Device != "cpu" && o.Device != "cuda" {
		return o, fmt.Errorf("device %q: want auto, cpu or cuda", o.Device)
	}
	if o.Threads == 0 {
		o.Threads = d.Threads
	}
	if o.Threads < 1 || o.Threads > 256 {
		return o, fmt.Errorf("threads %d: want 1..256", o.Threads)
	}
	if o.AnomalySource == "" {
		o.AnomalySource = protocol.AnomalyBuiltin
	}
	if o.AnomalySource != protocol.AnomalyBuiltin && r.textureDir(o.AnomalySource) == "" {
		return o, fmt.Errorf("anomaly source %q: not offered by this server (built-in, or a folder given to serve with --textures)", o.AnomalySource)
	}
	if o.LogEvery == 0 {
		o.LogEvery = d.LogEvery
	}
	if o.CkptEvery == 0 {
		o.CkptEvery = d.CkptEvery
	}
	if o.PreviewEvery == 0 {
		o.PreviewEvery = d.PreviewEvery
	}
	if o.LogEvery < 1 || o.CkptEvery < 1 || o.PreviewEvery < -1 {
		return o, fmt.Errorf("log every %d, checkpoint every %d, preview every %d: want positive step counts (preview -1 = none)", o.LogEvery, o.CkptEvery, o.PreviewEvery)
	}
	return o, nil
}

func (r *Runner) textureDir(id string) string {
	for _, t := range r.opt.Textures {
		if TextureID(t) == id {
			return t
		}
	}
	return ""
}

// stageDir is the staged dataset root of a run; the category folder below it holds train/good.
func stageDir(runDir string) string { return filepath.Join(runDir, "data") }

// trainArgs are the trainer's arguments for rec (fixed at the start; --resume is added when resuming).
func (r *Runner) trainArgs(rec record) []string {
	o := rec.Info.Options
	dir := rec.Info.Dir
	a := []string{
		"--data", stageDir(dir), "--category", stageCategory(rec.Info), "--layout", "mvtec",
		"--preset", o.Preset, "--teacher", o.Teacher, "--size", strconv.Itoa(o.Size),
		"--steps-student", strconv.Itoa(o.StepsStudent), "--batch-size", strconv.Itoa(o.Batch),
		"--device", o.Device, "--threads", strconv.Itoa(o.Threads), "--seed", strconv.Itoa(o.Seed),
		"--log-every", strconv.Itoa(o.LogEvery), "--ckpt-every", strconv.Itoa(o.CkptEvery),
		"--out", dir, "--progress-json", "-",
	}
	if o.Preset != protocol.PresetPlainRD {
		a = append(a, "--steps-seg", strconv.Itoa(o.StepsSeg))
	}
	preview := o.PreviewEvery
	if preview < 0 {
		preview = 0
	}
	a = append(a, "--preview-every", strconv.Itoa(preview))
	if o.RandomTeacher {
		a = append(a, "--random-teacher")
	} else if o.Teacher == "resnet18" {
		a = append(a, "--teacher-weights", r.opt.ResNet18Weights)
	}
	if o.NoFloor && o.Preset == protocol.PresetRDRE {
		a = append(a, "--no-floor")
	}
	if o.AnomalySource != protocol.AnomalyBuiltin && o.Preset != protocol.PresetPlainRD {
		a = append(a, "--anomaly-source", r.textureDir(o.AnomalySource))
	}
	return a
}
