//go:build !js

package training

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/shared/protocol"
)

// saveEvery bounds how often progress is written to the workspace (stage changes are written at once).
const saveEvery = 5 * time.Second

// execute runs (or continues) a run's pipeline and records its end.
func (r *Runner) execute(ctx context.Context, j *run) {
	j.mu.Lock()
	j.rec.Info.State = protocol.TrainRunning
	if j.rec.Started == "" {
		j.rec.Started = time.Now().UTC().Format(time.RFC3339)
	}
	if j.rec.Done == nil {
		j.rec.Done = map[string]bool{}
	}
	j.sps = map[string]float64{}
	j.mu.Unlock()
	r.save(j)
	r.broadcast(j, "")
	err := r.pipeline(ctx, j)
	r.finish(j, err)
}

// setStage records a stage change and tells every client.
func (r *Runner) setStage(j *run, stage string) {
	j.mu.Lock()
	// The trainer's first progress event sets the numbers of its stage; until then none of an earlier
	// stage or run may show under this one.
	in := &j.rec.Info
	in.Stage, in.Step, in.Total, in.Loss, in.SecPerStep, in.ETA = stage, 0, 0, 0, 0, -1
	j.mu.Unlock()
	r.save(j)
	r.broadcast(j, "")
}

func (r *Runner) markDone(j *run, stage string) {
	j.mu.Lock()
	j.rec.Done[stage] = true
	j.mu.Unlock()
	r.save(j)
}

func (r *Runner) done(j *run, stage string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.rec.Done[stage]
}

func (r *Runner) warn(j *run, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	j.mu.Lock()
	j.rec.Info.Warnings = append(j.rec.Info.Warnings, msg)
	j.mu.Unlock()
	r.log.Warn("training", "run", j.rec.Info.ID, "warning", msg)
}

func (r *Runner) pipeline(ctx context.Context, j *run) error {
	info := j.info()
	ds, ok := r.srv.Dataset(info.Dataset)
	if !ok {
		return fmt.Errorf("dataset %s is not open in this server", info.Dataset)
	}
	r.setStage(j, protocol.StagePrepare)
	pr, checking := r.env.result(ctx)
	if checking {
		return ctx.Err()
	}
	if pr.Problem != "" {
		return errors.New(pr.Problem)
	}
	j.mu.Lock()
	j.rec.Python, j.rec.Torch, j.rec.GPU = pr.Python, pr.Torch, pr.GPU
	rec := j.rec
	j.mu.Unlock()
	if rec.Info.Options.Device == "cuda" && !pr.CUDA {
		return fmt.Errorf("device cuda: PyTorch %s (%s) sees no GPU; train on cpu or auto", pr.Torch, pr.Python)
	}

	if !r.done(j, protocol.StagePrepare) {
		if err := os.MkdirAll(info.Dir, 0o755); err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
		if err := stage(ds, info, rec.Train); err != nil {
			return err
		}
		if err := writeList(filepath.Join(info.Dir, "heldout_images.txt"), rec.Calib); err != nil {
			return err
		}
		if len(rec.Real) > 0 {
			if err := stageReal(ds, r.st, info, rec.Real); err != nil {
				return err
			}
		}
		r.markDone(j, protocol.StagePrepare)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if !r.done(j, "train") {
		if err := r.train(ctx, j, pr); err != nil {
			return err
		}
		r.markDone(j, "train")
	}

	model := filepath.Join(info.Dir, "model.onnx")
	if !r.done(j, protocol.StageExport) {
		r.setStage(j, protocol.StageExport)
		tmp := filepath.Join(info.Dir, "model.onnx.tmp")
		c := &child{python: pr.Python, repo: pr.Repo, grace: r.opt.StopGrace,
			args: []string{"-m", "models.export", "--checkpoint", filepath.Join(info.Dir, "checkpoint.pt"), "--out", tmp}}
		out, closeOut := r.outFile(j)
		c.out = out
		err := c.run(ctx)
		closeOut()
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := os.Rename(tmp, model); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		j.mu.Lock()
		j.rec.ModelPath = model
		j.mu.Unlock()
		r.markDone(j, protocol.StageExport)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if !r.done(j, protocol.StageCalibrate) {
		r.setStage(j, protocol.StageCalibrate)
		if err := r.calibrateRun(ctx, j, ds, model); err != nil {
			return err
		}
		r.markDone(j, protocol.StageCalibrate)
	}

	if !r.done(j, protocol.StageRegister) {
		r.setStage(j, protocol.StageRegister)
		if r.jobs() == nil {
			why := r.opt.NoRegister
			if why == "" {
				why = "this server has no inference runtime (ONNX Runtime; run `make ort`, or pass --ort-lib)"
			}
			r.warn(j, "the model was exported to %s but not registered: %s", model, why)
		} else {
			j.mu.Lock()
			rec = j.rec
			j.mu.Unlock()
			mi, err := r.register(rec, model)
			if err != nil {
				return err
			}
			j.mu.Lock()
			j.rec.Info.Model, j.rec.Info.ModelName = mi.SHA256, mi.Name
			j.mu.Unlock()
		}
		r.markDone(j, protocol.StageRegister)
	}
	if err := r.writeCard(j, ds); err != nil {
		r.warn(j, "model card: %v", err)
	}

	if !r.done(j, protocol.StageEvaluate) {
		info = j.info()
		if r.jobs() != nil && info.Model != "" {
			r.setStage(j, protocol.StageEvaluate)
			if !hasTestImages(ds, info.Category) {
				r.warn(j, "no labelled test images in this dataset: the model was not evaluated")
			} else {
				job, err := r.jobs().Start(protocol.JobStartRequest{Dataset: info.Dataset, Model: info.Model, Split: protocol.SplitTest, Category: info.Category})
				if err != nil {
					r.warn(j, "evaluation not started: %v", err)
				} else {
					j.mu.Lock()
					j.rec.Info.Job = job.ID
					j.mu.Unlock()
					// The card names the evaluation job.
					if err := r.writeCard(j, ds); err != nil {
						r.warn(j, "model card: %v", err)
					}
				}
			}
		}
		r.markDone(j, protocol.StageEvaluate)
	}
	return nil
}

func hasTestImages(ds interface{ Images() []protocol.ImageInfo }, category string) bool {
	for _, im := range ds.Images() {
		if im.Split == protocol.SplitTest && (category == "" || im.Category == category) {
			return true
		}
	}
	return false
}

// outFile opens the run's trainer.out for appending (every line the Python processes print).
func (r *Runner) outFile(j *run) (*os.File, func()) {
	f, err := os.OpenFile(filepath.Join(j.info().Dir, "trainer.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.log.Warn("trainer output file", "err", err)
		return nil, func() {}
	}
	return f, func() { f.Close() }
}

// train runs models.train (with --resume when a checkpoint exists) and follows its progress.
func (r *Runner) train(ctx context.Context, j *run, pr probeResult) error {
	info := j.info()
	j.mu.Lock()
	args := append([]string{"-m", "models.train"}, j.rec.Args...)
	if len(j.rec.Real) > 0 {
		// models.finetune is models.train with real defects mixed into the segmentation stage.
		args = append([]string{"-m", "models.finetune", "--real-list", filepath.Join(info.Dir, "real.json")}, j.rec.Args...)
	}
	j.mu.Unlock()
	if _, err := os.Stat(filepath.Join(info.Dir, "checkpoint.pt")); err == nil {
		args = append(args, "--resume")
	}
	r.setStage(j, protocol.StageStudent)
	out, closeOut := r.outFile(j)
	defer closeOut()
	c := &child{python: pr.Python, repo: pr.Repo, args: args, grace: r.opt.StopGrace, out: out,
		onEvent: func(ev event) { r.onEvent(j, ev) },
		onLog:   func(line string) { r.onLog(j, line) }}
	r.log.Info("training", "run", info.ID, "python", pr.Python, "args", args)
	if err := c.run(ctx); err != nil {
		j.mu.Lock()
		last := j.lastError
		j.mu.Unlock()
		if last != "" && !errors.Is(err, errStopped) {
			return fmt.Errorf("train: %s", last)
		}
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// onLog passes a trainer log line to the clients (every few seconds at most; the log is on disk).
func (r *Runner) onLog(j *run, line string) {
	j.mu.Lock()
	now := time.Now()
	send := now.Sub(j.logSent) > 2*time.Second
	if send {
		j.logSent = now
	}
	j.mu.Unlock()
	if send {
		r.broadcast(j, line)
	}
}

func (r *Runner) previewURL(id, rel string) string {
	if rel == "" {
		return ""
	}
	return "/api/train/preview?" + url.Values{"run": {id}, "file": {path.Base(rel)}}.Encode()
}

// onEvent applies one progress event of the trainer.
func (r *Runner) onEvent(j *run, ev event) {
	j.mu.Lock()
	in := &j.rec.Info
	if in.Steps == nil {
		in.Steps = map[string]int{}
	}
	save := false
	switch ev.Event {
	case "start":
		// The floor's baseline starts a second time, on the same images; its steps join the plan.
		in.Device, in.Images = ev.Device, ev.Images
		j.rec.Torch, j.rec.GPU, j.rec.Fingerprint = ev.Torch, ev.GPU, ev.Fingerprint
		if j.rec.Plan == nil {
			j.rec.Plan = map[string]int{}
		}
		maps.Copy(j.rec.Plan, ev.Steps)
		if _, ok := ev.Steps[protocol.StageBaseline]; ok && len(ev.Steps) > 1 { // the recipe's start, with the floor
			in.FloorHeldOut = max(0, len(j.rec.Train)-ev.Images)
		}
		save = true
	case "resumed", "stopped":
		for k, v := range ev.Steps {
			in.Steps[k] = v
		}
		save = true
	case "progress":
		if in.Stage != ev.Stage {
			save = true
		}
		in.Stage, in.Step, in.Total, in.Loss, in.SecPerStep = ev.Stage, ev.Step, ev.Total, ev.Loss, ev.SecPerStep
		in.Steps[ev.Stage] = ev.Step
		mergeElapsed(in, ev.Elapsed)
		// The stage's mean time per step so far: the trainer's own figure covers only its last few steps,
		// and one busy minute on a shared machine made the ETA jump between 23 and 85 minutes.
		j.sps[ev.Stage] = ev.SecPerStep
		if el := in.Elapsed[ev.Stage]; el > 0 && ev.Step > 0 {
			j.sps[ev.Stage] = el / float64(ev.Step)
		}
		in.ETA = eta(j.rec.Plan, ev.Stage, ev.Step, ev.Total, j.sps)
		if p := ev.Preview; p != nil {
			in.Preview = &protocol.TrainPreview{Stage: ev.Stage, Step: ev.Step, Image: r.previewURL(in.ID, p.Image),
				Mask: r.previewURL(in.ID, p.Mask), Prediction: r.previewURL(in.ID, p.Prediction)}
		}
	case "stage":
		if ev.Thresholds != nil {
			j.rec.SynthThresholds = ev.Thresholds
		}
		if ev.Stage == protocol.StageFloor {
			in.Stage, in.Step, in.Total, in.ETA = ev.Stage, 0, 0, -1
			save = true
		}
	case "done":
		mergeElapsed(in, ev.Elapsed)
		for k, v := range ev.Steps {
			in.Steps[k] = v
		}
		in.ETA = 0
		if _, ok := ev.Steps[protocol.StageBaseline]; !ok && j.rec.Plan[protocol.StageBaseline] > 0 {
			in.ETA = -1 // the floor's baseline is still to train; its first steps give the pace
		}
		save = true
	case "floor":
		in.Floor = ev.Floor
		save = true
	case "error":
		j.lastError = ev.Message
	case "warning":
		r.log.Warn("trainer", "run", in.ID, "warning", ev.Message)
	}
	if time.Since(j.saved) > saveEvery {
		save = true
	}
	j.mu.Unlock()
	if save {
		r.save(j)
	}
	if ev.Event != "warning" {
		r.broadcast(j, "")
	}
}

// eta estimates the seconds left in training: the rest of this stage at its pace, then every later stage
// of the plan (student, seg, baseline) at its own pace when known, else at a share of the student's.
func eta(plan map[string]int, stage string, step, total int, sps map[string]float64) float64 {
	cur := sps[stage]
	if cur <= 0 {
		return -1
	}
	left := float64(max(0, total-step)) * cur
	student := sps[protocol.StageStudent]
	if student <= 0 {
		student = cur / stepShare(stage)
	}
	later := false
	for _, st := range []string{protocol.StageStudent, protocol.StageSeg, protocol.StageBaseline} {
		if later && plan[st] > 0 {
			s := sps[st]
			if s <= 0 {
				s = student * stepShare(st)
			}
			left += float64(plan[st]) * s
		}
		later = later || st == stage
	}
	return left
}

// stepShare is the time of a step of stage as a share of a student step, until one is measured: a
// segmentation step about a third (the encoder and student are frozen; 0.51 against 1.59 s/step on 2 CPU
// cores at 256 px), a plain-RD step about half (no synthesis; 0.44 against 1.0 s/step, issue 17's runs).
func stepShare(stage string) float64 {
	switch stage {
	case protocol.StageSeg:
		return segStepShare
	case protocol.StageBaseline:
		return baselineStepShare
	}
	return 1
}

const (
	segStepShare      = 0.35
	baselineStepShare = 0.45
)

// mergeElapsed adds the trainer's seconds per stage to in's: the floor's baseline reports only its own.
func mergeElapsed(in *protocol.TrainInfo, el map[string]float64) {
	if len(el) == 0 {
		return
	}
	if in.Elapsed == nil {
		in.Elapsed = map[string]float64{}
	}
	maps.Copy(in.Elapsed, el)
}

// finish records the end of a run. err == nil: done.
func (r *Runner) finish(j *run, err error) {
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	j.mu.Lock()
	user := j.user
	j.mu.Unlock()
	stopped := errors.Is(err, errStopped) || errors.Is(err, context.Canceled)
	if stopped && closing && !user {
		// Server shutdown: the run stays "running" and resumes on the next start.
		r.save(j)
		r.log.Info("training interrupted by shutdown; it resumes on the next start", "run", j.rec.Info.ID)
		return
	}
	j.mu.Lock()
	in := &j.rec.Info
	switch {
	case err == nil:
		in.State = protocol.TrainDone
		in.ETA = 0
	case stopped:
		in.State = protocol.TrainCancelled
		in.Error = ""
	default:
		in.State = protocol.TrainFailed
		in.Error = err.Error()
	}
	in.Finished = time.Now().UTC().Format(time.RFC3339)
	state, id, msg := in.State, in.ID, in.Error
	j.mu.Unlock()
	r.save(j)
	r.log.Info("training ended", "run", id, "state", state, "error", msg)
	env, _ := protocol.New("", protocol.TypeTrainDone, j.info())
	r.srv.Broadcast(env)
}

// register adds the exported model to the job runner and the workspace with what training knows.
func (r *Runner) register(rec record, model string) (protocol.ModelInfo, error) {
	mi, err := r.jobs().AddModel(model)
	if err != nil {
		return mi, fmt.Errorf("register: %w", err)
	}
	return r.jobs().UpdateModel(mi.SHA256, func(m *protocol.ModelInfo) { applyTraining(m, rec) })
}

// reRegister offers a finished run's model again after a restart.
func (r *Runner) reRegister(rec record) error {
	if _, ok := inference.Initialized(); !ok {
		return errors.New("no inference runtime")
	}
	mi, err := r.jobs().AddModel(rec.ModelPath)
	if err != nil {
		return err
	}
	if rec.Info.Model != "" && mi.SHA256 != rec.Info.Model {
		return fmt.Errorf("%s changed since training (sha256 %s, trained %s)", rec.ModelPath, mi.SHA256[:12], rec.Info.Model[:min(12, len(rec.Info.Model))])
	}
	_, err = r.jobs().UpdateModel(mi.SHA256, func(m *protocol.ModelInfo) { applyTraining(m, rec) })
	return err
}

func applyTraining(m *protocol.ModelInfo, rec record) {
	m.Training = rec.Info.ID
	if m.Category == "" {
		m.Category = rec.Info.Category
	}
	// The name says what the model is: plain RD, or what the floor assembled (the same label as a model
	// file's own name, jobs.modelName), so that no list shows a floor's plain-RD model as RD-RE.
	kind := ""
	if rec.Info.Options.Preset == protocol.PresetPlainRD {
		kind = "plain RD, "
	} else if l := rec.Info.Floor.Label(); l != "" {
		kind = l + ", "
	}
	m.Name = fmt.Sprintf("%s (%s%s, trained %s)", m.Category, kind, rec.Info.Options.Teacher, rec.Info.ID)
	if len(rec.Info.Thresholds) > 0 {
		if m.Thresholds == nil {
			m.Thresholds = map[string]float64{}
		}
		for k, v := range rec.Info.Thresholds {
			m.Thresholds[k] = v
		}
	}
	var ids []string
	if rec.FromTest {
		ids = append(append(ids, rec.Train...), rec.Calib...)
	}
	ids = append(ids, rec.Real...)
	if len(ids) > 0 {
		if m.TrainedOn == nil {
			m.TrainedOn = map[string][]string{}
		}
		m.TrainedOn[rec.Info.Dataset] = ids
	}
}

func writeList(p string, ids []string) error {
	var b []byte
	for _, id := range ids {
		b = append(b, id...)
		b = append(b, '\n')
	}
	return os.WriteFile(p, b, 0o644)
}
