//go:build !js

// Package training trains RD-RE models from the server: it runs the project's own PyTorch trainer
// (`PYTHON -m models.train`, models/) as a supervised child process on a dataset's normal images, streams
// its progress to every websocket client, and on success exports the ONNX file, calibrates thresholds on
// held-out normal images, registers the model (workspace and job runner), writes a model card and starts
// an evaluation on the dataset's labelled test images.
//
// Contract:
//   - A run is a record in the workspace (bucket trainings) written at every stage change and every few
//     seconds of progress, and a folder (Options.RunsDir/ID) holding the staged training images, the
//     trainer's checkpoint, log and previews, the ONNX file and the model card.
//   - One run trains at a time; train.start while one runs is refused with the running run's ID.
//   - Cancel sends SIGTERM to the trainer's process group: the trainer finishes its step, saves its
//     checkpoint and exits (models/progress.py); after Options.StopGrace it is killed (SIGKILL). A
//     cancelled or failed run continues from its last checkpoint with Resume.
//   - Close (server shutdown) stops the trainer the same way but leaves the run recorded as running: the
//     next server on this workspace resumes it (ResumeAll), from the checkpoint, and skips the stages a
//     run has finished (export, calibration, registration and evaluation happen once).
//   - Nothing a client sends is used as a path: the teacher weights and texture folders are the server's
//     (Options), named by ID.
//   - Which images: the normal (good) images of the train split, minus a held-out tenth for calibration
//     when the dataset has no validation split; a dataset without a train split (images+masks, plain)
//     gives 60 % of its good test images to training and 10 % to calibration, and every evaluation of
//     that model leaves them out (protocol.ModelInfo.TrainedOn, JobInfo.Excluded).
package training

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// DefaultPython is the interpreter tried when none is given: Debian's, which python3-torch installs into.
const DefaultPython = "/usr/bin/python3"

// Options configures a Runner.
type Options struct {
	// Python is the interpreter with PyTorch; "" tries DefaultPython, then python3 on PATH.
	Python string
	// Repo is the folder holding the trainer package models/; "" finds it (the working directory, then
	// the folder above the executable's, the layout of `make build`).
	Repo string
	// RunsDir holds one folder per run; "" = "runs" beside the workspace file.
	RunsDir string
	// Jobs registers and evaluates trained models; nil exports them only.
	Jobs *jobs.Runner
	// ResNet18Weights is a torchvision ResNet18 state_dict file; without it only MobileNetV2 is offered.
	ResNet18Weights string
	// Textures are folders of texture images offered as anomaly sources (DTD, ...), by ID = base name.
	Textures []string
	// InferDevice and InferThreads are used for the calibration inference ("" = cpu).
	InferDevice  string
	InferThreads int
	// StopGrace is how long a trainer may take to save its checkpoint after SIGTERM; default 60 s.
	StopGrace time.Duration
	// Progress, when set, is called with every state a run streams (and the log line that caused it).
	Progress func(info protocol.TrainInfo, logLine string)
	// NoRegister says why models are not registered when Jobs is nil ("" = no inference runtime).
	NoRegister string
	Log        *slog.Logger
}

// Runner owns the training runs of one server.
type Runner struct {
	srv *server.Server
	st  *store.Store
	opt Options
	log *slog.Logger

	env *envProbe

	mu      sync.Mutex
	active  *run
	closing bool
	wg      sync.WaitGroup
}

// record is what the workspace keeps per run.
type record struct {
	Info protocol.TrainInfo `json:"info"`
	// Train and Calib are the dataset image IDs staged for training and held out for calibration.
	Train []string `json:"train"`
	Calib []string `json:"calib"`
	// Real are the defective images whose masks fine-tune the segmentation stage (models.finetune).
	Real []string `json:"real,omitempty"`
	// FromTest is set when the images came from the test split (the dataset has no train split): every
	// evaluation of the model then leaves them out.
	FromTest bool `json:"fromTest,omitempty"`
	// Args are the trainer's arguments (without --resume), fixed at the start so a resume repeats them.
	Args []string `json:"args"`
	// Done marks the finished stages (prepare, train, export, calibrate, register, evaluate).
	Done map[string]bool `json:"done"`
	// ModelPath is the exported ONNX file; Python, Torch describe the interpreter it trained with.
	ModelPath string `json:"modelPath,omitempty"`
	Python    string `json:"python,omitempty"`
	Torch     string `json:"torch,omitempty"`
	GPU       string `json:"gpu,omitempty"`
	// Fingerprint is the trainer's data fingerprint (sha256 over the training files' names and bytes).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Plan is the trainer's planned steps per stage (its start events): student, seg and, with the floor,
	// baseline. The ETA covers every planned stage.
	Plan map[string]int `json:"plan,omitempty"`
	// SynthThresholds are the trainer's thresholds on synthetic anomalies (the ONNX metadata's).
	SynthThresholds map[string]float64 `json:"synthThresholds,omitempty"`
	Started         string             `json:"started,omitempty"`
}

type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	rec    record
	saved  time.Time // last time the record was written while training
	// user is set when a client cancelled (as opposed to a server shutdown).
	user bool
	// sps is the newest seconds per step of each stage; lastError the trainer's last error event.
	sps       map[string]float64
	lastError string
	logSent   time.Time
}

// New returns a Runner bound to srv: it answers the train.* messages and serves the previews at
// GET /api/train/preview. Call it before srv.Handler.
func New(srv *server.Server, opt Options) *Runner {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.RunsDir == "" {
		opt.RunsDir = filepath.Join(filepath.Dir(srv.Store().Path()), "runs")
	}
	if opt.StopGrace <= 0 {
		opt.StopGrace = 60 * time.Second
	}
	if opt.InferDevice == "" {
		opt.InferDevice = "cpu"
	}
	r := &Runner{srv: srv, st: srv.Store(), opt: opt, log: opt.Log}
	r.env = newEnvProbe(opt.Python, opt.Repo)
	srv.AddHandler(r)
	srv.Handle("GET /api/train/preview", r.previewHandler())
	return r
}

// RunsDir is the folder of the run folders.
func (r *Runner) RunsDir() string { return r.opt.RunsDir }

func newID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// ErrBusy is wrapped when a run is started while another trains.
var ErrBusy = errors.New("a training run is in progress")

// AttachJobs gives the runner the job system that registers and evaluates trained models, and offers
// the models of finished runs again (with their thresholds and the images they must not be evaluated
// on). Call it before the job runner resumes its interrupted jobs, so that those of trained models find
// their model.
func (r *Runner) AttachJobs(j *jobs.Runner) error {
	r.mu.Lock()
	r.opt.Jobs = j
	r.mu.Unlock()
	if j == nil {
		return nil
	}
	return r.st.Trainings(func(id string, raw []byte) error {
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			r.log.Warn("training run unreadable", "run", id, "err", err)
			return nil
		}
		if rec.Done[protocol.StageRegister] && rec.ModelPath != "" {
			if _, ok := r.srv.Dataset(rec.Info.Dataset); ok {
				if err := r.reRegister(rec); err != nil {
					r.log.Warn("trained model not offered", "run", rec.Info.ID, "model", rec.ModelPath, "err", err)
				}
			}
		}
		return nil
	})
}

func (r *Runner) jobs() *jobs.Runner {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opt.Jobs
}

// Start validates req, records a new run and starts it. It returns at once; the run goes on in the
// background.
func (r *Runner) Start(req protocol.TrainStartRequest) (protocol.TrainInfo, error) {
	return r.StartIn(req, "")
}

// StartIn is Start with the run's folder given (rdre train --out); "" = a new folder under RunsDir.
func (r *Runner) StartIn(req protocol.TrainStartRequest, dir string) (protocol.TrainInfo, error) {
	ds, ok := r.srv.Dataset(req.Dataset)
	if !ok {
		return protocol.TrainInfo{}, fmt.Errorf("dataset %q: not open in this server", req.Dataset)
	}
	cats := ds.Info().Categories
	if req.Category == "" && len(cats) > 1 {
		return protocol.TrainInfo{}, fmt.Errorf("dataset %s has %d categories (%s): choose one", req.Dataset, len(cats), strings.Join(cats, ", "))
	}
	if req.Category != "" && !contains(cats, req.Category) {
		return protocol.TrainInfo{}, fmt.Errorf("dataset %s has no category %q (it has %s)", req.Dataset, req.Category, strings.Join(cats, ", "))
	}
	if req.Category == "" && len(cats) == 1 {
		req.Category = cats[0] // named in the model, its card and its evaluation
	}
	opt, err := r.resolveOptions(req.Options)
	if err != nil {
		return protocol.TrainInfo{}, err
	}
	sums, err := r.st.MaskSummaries(req.Dataset)
	if err != nil {
		return protocol.TrainInfo{}, err
	}
	imgs := effectiveImages(ds, sums)
	sel, err := selectImages(imgs, req.Category)
	if err != nil {
		return protocol.TrainInfo{}, err
	}
	real, err := selectReal(imgs, req.Category, opt)
	if err != nil {
		return protocol.TrainInfo{}, err
	}
	if len(real) > 0 {
		sel.warnings = append(sel.warnings, fmt.Sprintf("%d real defective images with their masks are mixed into the segmentation stage; every evaluation of this model leaves them out", len(real)))
	}
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return protocol.TrainInfo{}, errors.New("the server is shutting down")
	}
	if r.active != nil {
		id := r.active.rec.Info.ID
		r.mu.Unlock()
		return protocol.TrainInfo{}, fmt.Errorf("%w (run %s): cancel it or wait for it to finish", ErrBusy, id)
	}
	id := newID()
	if dir == "" {
		dir = filepath.Join(r.opt.RunsDir, id)
	} else if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	rec := record{
		Info: protocol.TrainInfo{
			ID: id, Dataset: req.Dataset, Category: req.Category, Options: opt, State: protocol.TrainQueued,
			Stage: protocol.StagePrepare, ETA: -1, Images: len(sel.train), HeldOut: len(sel.calib), Real: len(real),
			Created: time.Now().UTC().Format(time.RFC3339), Dir: dir,
		},
		Train: sel.train, Calib: sel.calib, Real: real, FromTest: sel.fromTest, Done: map[string]bool{},
	}
	if req.NoEvaluate {
		rec.Done[protocol.StageEvaluate] = true
	}
	rec.Info.Warnings = append(rec.Info.Warnings, sel.warnings...)
	rec.Args = r.trainArgs(rec)
	if err := r.st.PutTraining(id, rec); err != nil {
		r.mu.Unlock()
		return protocol.TrainInfo{}, fmt.Errorf("record training run: %w", err)
	}
	j := r.launchLocked(rec)
	r.mu.Unlock()
	return j.info(), nil
}

// Resume continues a cancelled or failed run from its last checkpoint.
func (r *Runner) Resume(id string) (protocol.TrainInfo, error) {
	var rec record
	if err := r.st.Training(id, &rec); err != nil {
		return protocol.TrainInfo{}, err
	}
	if _, ok := r.srv.Dataset(rec.Info.Dataset); !ok {
		return protocol.TrainInfo{}, fmt.Errorf("run %s: dataset %s is not open in this server", id, rec.Info.Dataset)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != nil {
		if r.active.rec.Info.ID == id {
			return r.active.info(), nil
		}
		return protocol.TrainInfo{}, fmt.Errorf("%w (run %s): cancel it or wait for it to finish", ErrBusy, r.active.rec.Info.ID)
	}
	if rec.Info.State == protocol.TrainDone {
		return rec.Info, fmt.Errorf("run %s is done; start a new one", id)
	}
	rec.Info.Resumes++
	rec.Info.Error, rec.Info.Finished = "", ""
	rec.Info.State = protocol.TrainQueued
	if err := r.st.PutTraining(id, rec); err != nil {
		return protocol.TrainInfo{}, fmt.Errorf("record training run: %w", err)
	}
	return r.launchLocked(rec).info(), nil
}

// ResumeAll resumes the run the workspace records as queued or running (the server stopped while it
// trained), from its checkpoint. Call it once at start, after AttachJobs.
func (r *Runner) ResumeAll() error {
	var recs []record
	err := r.st.Trainings(func(id string, raw []byte) error {
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			r.log.Warn("training run unreadable, not resumed", "run", id, "err", err)
			return nil
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list training runs: %w", err)
	}
	var pending []record
	for _, rec := range recs {
		if rec.Info.State == protocol.TrainQueued || rec.Info.State == protocol.TrainRunning {
			pending = append(pending, rec)
		}
	}
	for i, rec := range pending {
		if _, ok := r.srv.Dataset(rec.Info.Dataset); !ok || i > 0 {
			why := fmt.Sprintf("dataset %s is not open in this server", rec.Info.Dataset)
			if ok {
				why = "another run was resumed first; resume this one when it ends"
			}
			rec.Info.State, rec.Info.Error = protocol.TrainFailed, "interrupted: "+why
			rec.Info.Finished = time.Now().UTC().Format(time.RFC3339)
			if err := r.st.PutTraining(rec.Info.ID, rec); err != nil {
				r.log.Error("record training run", "run", rec.Info.ID, "err", err)
			}
			continue
		}
		r.log.Info("resuming training run", "run", rec.Info.ID, "stage", rec.Info.Stage, "step", rec.Info.Step)
		rec.Info.Resumes++
		r.mu.Lock()
		r.launchLocked(rec)
		r.mu.Unlock()
	}
	return nil
}

func (r *Runner) launchLocked(rec record) *run {
	ctx, cancel := context.WithCancel(context.Background())
	j := &run{cancel: cancel, done: make(chan struct{}), rec: rec}
	r.active = j
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(j.done)
		defer func() {
			r.mu.Lock()
			if r.active == j {
				r.active = nil
			}
			r.mu.Unlock()
		}()
		r.execute(ctx, j)
	}()
	return j
}

func (j *run) info() protocol.TrainInfo {
	j.mu.Lock()
	defer j.mu.Unlock()
	return cloneInfo(j.rec.Info)
}

func cloneInfo(in protocol.TrainInfo) protocol.TrainInfo {
	out := in
	out.Steps = cloneMap(in.Steps)
	out.Elapsed = cloneMap(in.Elapsed)
	out.Thresholds = cloneMap(in.Thresholds)
	out.Warnings = append([]string(nil), in.Warnings...)
	if in.Preview != nil {
		p := *in.Preview
		out.Preview = &p
	}
	if in.Floor != nil {
		f := *in.Floor // its Recipe and Baseline are never changed after the trainer's event
		out.Floor = &f
	}
	return out
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Cancel stops a run; its checkpoint stays for Resume. It waits until the trainer has stopped.
func (r *Runner) Cancel(id string) (protocol.TrainInfo, error) {
	r.mu.Lock()
	j := r.active
	r.mu.Unlock()
	if j == nil || j.rec.Info.ID != id {
		return r.Get(id)
	}
	j.mu.Lock()
	j.user = true
	j.mu.Unlock()
	j.cancel()
	<-j.done
	return r.Get(id)
}

// Wait blocks until the run ends (or ctx is done) and returns its state.
func (r *Runner) Wait(ctx context.Context, id string) (protocol.TrainInfo, error) {
	r.mu.Lock()
	j := r.active
	r.mu.Unlock()
	if j != nil && j.rec.Info.ID == id {
		select {
		case <-j.done:
		case <-ctx.Done():
			return protocol.TrainInfo{}, ctx.Err()
		}
	}
	return r.Get(id)
}

// Get returns a run as it stands.
func (r *Runner) Get(id string) (protocol.TrainInfo, error) {
	r.mu.Lock()
	j := r.active
	r.mu.Unlock()
	if j != nil && j.rec.Info.ID == id {
		return j.info(), nil
	}
	var rec record
	if err := r.st.Training(id, &rec); err != nil {
		return protocol.TrainInfo{}, err
	}
	return rec.Info, nil
}

// List returns the runs (of one dataset, or all for ""), newest first.
func (r *Runner) List(datasetID string) ([]protocol.TrainInfo, error) {
	out := []protocol.TrainInfo{}
	err := r.st.Trainings(func(id string, raw []byte) error {
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("training run %s: %w", id, err)
		}
		if datasetID == "" || rec.Info.Dataset == datasetID {
			out = append(out, rec.Info)
		}
		return nil
	})
	r.mu.Lock()
	if j := r.active; j != nil {
		for i := range out {
			if out[i].ID == j.rec.Info.ID {
				out[i] = j.info()
			}
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created > out[j].Created || (out[i].Created == out[j].Created && out[i].ID > out[j].ID)
	})
	return out, err
}

// Close stops the running trainer (it saves its checkpoint) and waits for it. The run stays recorded as
// running, so the next server on this workspace resumes it.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closing = true
	j := r.active
	r.mu.Unlock()
	if j != nil {
		j.cancel()
	}
	r.wg.Wait()
}

// Env says what this server can train with; it waits for the Python probe up to ctx.
func (r *Runner) Env(ctx context.Context) protocol.TrainEnv {
	pr, checking := r.env.result(ctx)
	env := protocol.TrainEnv{
		Checking: checking, Python: pr.Python, Torch: pr.Torch, CUDA: pr.CUDA, GPU: pr.GPU, Missing: pr.Missing,
		Problem: pr.Problem, Ready: !checking && pr.Problem == "",
		Defaults: DefaultCPU(), Quick: QuickCPU(), GPUPreset: DefaultGPU(), CanEvaluate: r.jobs() != nil,
	}
	if checking {
		env.Problem = ""
	}
	env.Teachers = []protocol.TrainTeacher{{Name: "mobilenet_v2", Label: "MobileNetV2 (built in)", Available: true,
		Note: "ImageNet weights committed in models/teachers (Apache-2.0)"}}
	rn := protocol.TrainTeacher{Name: "resnet18", Label: "ResNet18 (torchvision weights)"}
	if r.opt.ResNet18Weights != "" {
		rn.Available, rn.Note = true, r.opt.ResNet18Weights
	} else {
		rn.Note = "start the server with --resnet18-weights FILE (a torchvision resnet18 state_dict)"
	}
	env.Teachers = append(env.Teachers, rn)
	env.AnomalySources = []protocol.TrainSource{{ID: protocol.AnomalyBuiltin, Label: "built-in texture generator"}}
	for _, t := range r.opt.Textures {
		env.AnomalySources = append(env.AnomalySources, protocol.TrainSource{ID: TextureID(t), Label: "textures: " + t})
	}
	return env
}

// TextureID names a texture folder as an anomaly source (protocol.TrainOptions.AnomalySource).
func TextureID(dir string) string { return "textures:" + filepath.Base(filepath.Clean(dir)) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// broadcast sends the run's state to every client.
func (r *Runner) broadcast(j *run, logLine string) {
	info := j.info()
	env, _ := protocol.New("", protocol.TypeTrainProgress, protocol.TrainProgress{Run: info, Log: logLine})
	r.srv.Broadcast(env)
	if r.opt.Progress != nil {
		r.opt.Progress(info, logLine)
	}
}

// save writes the run's record.
func (r *Runner) save(j *run) {
	j.mu.Lock()
	rec := j.rec
	rec.Info = cloneInfo(j.rec.Info)
	rec.Done = cloneMap(j.rec.Done)
	j.saved = time.Now()
	j.mu.Unlock()
	if err := r.st.PutTraining(rec.Info.ID, rec); err != nil {
		r.log.Error("record training run", "run", rec.Info.ID, "err", err)
	}
}
