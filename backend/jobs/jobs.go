//go:build !js

// Package jobs runs evaluation jobs: a model over one split of a dataset, every map cached in the
// workspace, metrics computed incrementally and streamed to every websocket client.
//
// Contract:
//   - A job's record (its JobInfo and the score of every finished image) is written to the workspace after
//     every batch, in the same order as its maps, so after a crash or restart a job resumes where it was and
//     never recomputes a map that is cached. Resume re-reads the cached maps to rebuild the metrics.
//   - Every client receives the same stream (job.progress, job.metrics, job.done) for every job; a client
//     that joins late asks job.get for a snapshot and then follows the stream.
//   - Cancel stops a job after its current batch; its cached maps stay, so starting the same evaluation
//     again reuses them only if it is resumed (a new job starts from scratch by design: a new ID is a new
//     measurement).
//   - The final result is exact (metrics.Accumulator.Final); results streamed while running are marked
//     partial.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	mrand "math/rand"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Options configures a Runner.
type Options struct {
	Device  string // auto, cpu or cuda
	Threads int
	Batch   int
	// Workers bounds how many images are decoded in parallel ahead of inference.
	Workers int
	Log     *slog.Logger
}

// Runner owns the models and jobs of one server.
type Runner struct {
	srv *server.Server
	st  *store.Store
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	models  map[string]*modelEntry
	running map[string]*run
	wg      sync.WaitGroup
	closing bool // set by Close: interrupted jobs stay resumable instead of cancelled
}

type modelEntry struct {
	info  protocol.ModelInfo
	model inference.Predictor // a *inference.Model, or a remote model (AddPredictor)
}

// record is what the workspace keeps per job.
type record struct {
	Info   protocol.JobInfo      `json:"info"`
	Scores []protocol.ImageScore `json:"scores"`
}

type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	rec    record
	acc    *metrics.Accumulator
}

// New returns a Runner bound to srv; it registers itself as the server's job handler and adds the
// /api/heatmap route. inference.Init must have been called when models are added.
func New(srv *server.Server, opt Options) *Runner {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Workers <= 0 {
		opt.Workers = 2
	}
	r := &Runner{srv: srv, st: srv.Store(), opt: opt, log: opt.Log, models: map[string]*modelEntry{}, running: map[string]*run{}}
	srv.SetJobRunner(r)
	srv.Handle("GET /api/heatmap", r.heatmapHandler())
	srv.Handle("GET /api/model", r.modelHandler())
	return r
}

// AddModel opens and validates a model file and registers it in the workspace.
func (r *Runner) AddModel(path string) (protocol.ModelInfo, error) {
	m, err := inference.Open(path, inference.Options{Device: r.opt.Device, Threads: r.opt.Threads, Batch: r.opt.Batch})
	if err != nil {
		return protocol.ModelInfo{}, fmt.Errorf("add model %s: %w", path, err)
	}
	in := m.Info()
	info := protocol.ModelInfo{
		SHA256: in.SHA256, Path: in.Path, Name: modelName(in), InputSize: in.InputSize, Teacher: in.Teacher,
		Category: in.Category, Device: in.Device, Metadata: in.Metadata, Thresholds: in.Thresholds,
	}
	// A calibration made in this workspace outlives the server: the model file does not carry it.
	if c, ok, err := r.st.LatestCalibration(in.SHA256); err != nil {
		r.log.Warn("model calibration not read", "model", in.SHA256[:12], "err", err)
	} else if ok {
		applyCalibration(&info, c)
	}
	if err := r.st.PutModel(in.SHA256, info); err != nil {
		m.Close()
		return protocol.ModelInfo{}, fmt.Errorf("register model %s: %w", path, err)
	}
	r.mu.Lock()
	if old, ok := r.models[in.SHA256]; ok {
		old.model.Close()
	}
	r.models[in.SHA256] = &modelEntry{info: info, model: m}
	r.mu.Unlock()
	r.log.Info("model ready", "path", in.Path, "sha256", in.SHA256[:12], "device", in.Device, "reason", in.ShortDeviceReason())
	r.log.Debug("model device", "sha256", in.SHA256[:12], "reason", in.DeviceReason)
	return info, nil
}

// UpdateModel changes the registered description of a model (thresholds calibrated after training, the
// images it was trained on) in memory and in the workspace. fn must not change SHA256 or Path.
func (r *Runner) UpdateModel(sha string, fn func(*protocol.ModelInfo)) (protocol.ModelInfo, error) {
	r.mu.Lock()
	me, ok := r.models[sha]
	if !ok {
		r.mu.Unlock()
		return protocol.ModelInfo{}, fmt.Errorf("model %q is not loaded: %w", sha, store.ErrNotFound)
	}
	info := me.info
	fn(&info)
	info.SHA256, info.Path = me.info.SHA256, me.info.Path
	// A new entry, not a change to the old one: whoever holds the old entry reads it unlocked.
	r.models[sha] = &modelEntry{info: info, model: me.model}
	r.mu.Unlock()
	if err := r.st.PutModel(sha, info); err != nil {
		return info, fmt.Errorf("register model %s: %w", sha, err)
	}
	return info, nil
}

func modelName(in inference.Info) string {
	base := path.Base(strings.ReplaceAll(in.Path, "\\", "/"))
	var parts []string
	if in.Category != "" {
		parts = append(parts, in.Category, in.Teacher)
	}
	// A model the floor assembled from RD-RE and plain RD says so, or it reads like RD-RE alone in every list.
	var f protocol.TrainFloor
	if raw := in.Metadata[inference.KeyFloor]; raw != "" && json.Unmarshal([]byte(raw), &f) == nil {
		if l := f.Label(); l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return base
	}
	return fmt.Sprintf("%s (%s)", base, strings.Join(parts, ", "))
}

// Models lists the models this runner can run.
func (r *Runner) Models() []protocol.ModelInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]protocol.ModelInfo, 0, len(r.models))
	for _, m := range r.models {
		out = append(out, m.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops running jobs, waits for them, and closes the models. The stopped jobs stay recorded as
// running, so the next server on this workspace resumes them.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closing = true
	for _, j := range r.running {
		j.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	for _, m := range r.models {
		m.model.Close()
	}
	r.models = map[string]*modelEntry{}
	r.mu.Unlock()
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// Start validates req and starts a job.
func (r *Runner) Start(req protocol.JobStartRequest) (protocol.JobInfo, error) {
	if req.Split == "" {
		req.Split = protocol.SplitTest
	}
	if req.Masks == "" {
		req.Masks = protocol.MasksDataset
	}
	if req.Masks != protocol.MasksDataset && req.Masks != protocol.MasksWorkspace {
		return protocol.JobInfo{}, fmt.Errorf("masks %q: want %q or %q", req.Masks, protocol.MasksDataset, protocol.MasksWorkspace)
	}
	if req.NoiseStd < 0 || req.NoiseStd > 1 || math.IsNaN(req.NoiseStd) {
		return protocol.JobInfo{}, fmt.Errorf("noise standard deviation %v outside [0, 1]", req.NoiseStd)
	}
	ds, ok := r.srv.Dataset(req.Dataset)
	if !ok {
		return protocol.JobInfo{}, fmt.Errorf("dataset %q: %w", req.Dataset, dataset.ErrNotFound)
	}
	cats := ds.Info().Categories
	if req.Category == "" && len(cats) > 1 {
		return protocol.JobInfo{}, fmt.Errorf("dataset %s has %d categories (%s): choose one", req.Dataset, len(cats), strings.Join(cats, ", "))
	}
	r.mu.Lock()
	me, ok := r.models[req.Model]
	r.mu.Unlock()
	if !ok {
		return protocol.JobInfo{}, fmt.Errorf("model %q is not loaded (start serve with --model FILE)", req.Model)
	}
	info := protocol.JobInfo{
		ID: newID(), Dataset: req.Dataset, Model: req.Model, ModelName: me.info.Name, Split: req.Split,
		Category: req.Category, Masks: req.Masks, NoiseStd: req.NoiseStd, State: protocol.JobQueued,
		Device: me.info.Device, Created: time.Now().UTC().Format(time.RFC3339), Threshold: jobThreshold(me.info),
	}
	// A model trained here never scores the images it learned from or was calibrated on.
	if trained := me.info.TrainedOn[req.Dataset]; len(trained) > 0 {
		skip := make(map[string]bool, len(trained))
		for _, id := range trained {
			skip[id] = true
		}
		for _, im := range r.selectImages(ds, info) {
			if skip[im.ID] {
				info.Excluded = append(info.Excluded, im.ID)
			}
		}
	}
	info.Total = len(r.selectImages(ds, info))
	if info.Total == 0 {
		return protocol.JobInfo{}, fmt.Errorf("dataset %s has no %s images", req.Dataset, req.Split)
	}
	rec := record{Info: info}
	if err := r.st.PutJob(info.ID, rec); err != nil {
		return protocol.JobInfo{}, fmt.Errorf("record job: %w", err)
	}
	r.launch(rec)
	return info, nil
}

// Resume restarts every job that the workspace records as queued or running (the server stopped while
// it ran). Call it after the models are added.
func (r *Runner) Resume() error {
	var recs []record
	err := r.st.Jobs(func(id string, raw []byte) error {
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		if rec.Info.State == protocol.JobQueued || rec.Info.State == protocol.JobRunning {
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	for _, rec := range recs {
		if _, ok := r.srv.Dataset(rec.Info.Dataset); !ok {
			r.fail(rec, fmt.Errorf("dataset %s is not open in this server", rec.Info.Dataset))
			continue
		}
		r.mu.Lock()
		_, ok := r.models[rec.Info.Model]
		r.mu.Unlock()
		if !ok {
			r.fail(rec, fmt.Errorf("model %s is not loaded in this server", rec.Info.Model))
			continue
		}
		r.log.Info("resuming job", "job", rec.Info.ID, "done", len(rec.Scores), "total", rec.Info.Total)
		r.launch(rec)
	}
	return nil
}

func (r *Runner) fail(rec record, err error) {
	rec.Info.State = protocol.JobFailed
	rec.Info.Error = err.Error()
	rec.Info.Finished = time.Now().UTC().Format(time.RFC3339)
	if perr := r.st.PutJob(rec.Info.ID, rec); perr != nil {
		r.log.Error("record failed job", "job", rec.Info.ID, "err", perr)
	}
	r.log.Warn("job failed", "job", rec.Info.ID, "err", err)
}

func (r *Runner) launch(rec record) {
	ctx, cancel := context.WithCancel(context.Background())
	j := &run{cancel: cancel, done: make(chan struct{}), rec: rec, acc: metrics.NewAccumulator(accOptions(rec.Info))}
	r.mu.Lock()
	r.running[rec.Info.ID] = j
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(j.done)
		defer func() {
			r.mu.Lock()
			delete(r.running, rec.Info.ID)
			r.mu.Unlock()
		}()
		r.execute(ctx, j)
	}()
}

// Wait blocks until the job ends (or ctx is done) and returns its final state.
func (r *Runner) Wait(ctx context.Context, id string) (protocol.JobState, error) {
	r.mu.Lock()
	j, ok := r.running[id]
	r.mu.Unlock()
	if ok {
		select {
		case <-j.done:
		case <-ctx.Done():
			return protocol.JobState{}, ctx.Err()
		}
	}
	return r.State(id)
}

// Cancel stops a running job.
func (r *Runner) Cancel(id string) (protocol.JobInfo, error) {
	r.mu.Lock()
	j, ok := r.running[id]
	r.mu.Unlock()
	if !ok {
		st, err := r.State(id)
		return st.Job, err
	}
	j.cancel()
	<-j.done
	st, err := r.State(id)
	return st.Job, err
}

// State returns the stored state of a job with its result (exact when done, partial while running).
func (r *Runner) State(id string) (protocol.JobState, error) {
	r.mu.Lock()
	j, running := r.running[id]
	r.mu.Unlock()
	if running {
		j.mu.Lock()
		st := protocol.JobState{Job: j.rec.Info, Scores: append([]protocol.ImageScore(nil), j.rec.Scores...)}
		j.mu.Unlock()
		if p := j.acc.Partial(); p != nil {
			st.Result, _ = json.Marshal(p)
		}
		return st, nil
	}
	var rec record
	if err := r.st.Job(id, &rec); err != nil {
		return protocol.JobState{}, fmt.Errorf("job %s: %w", id, err)
	}
	st := protocol.JobState{Job: rec.Info, Scores: rec.Scores}
	if raw, err := r.st.Result(id); err == nil {
		st.Result = raw
	}
	return st, nil
}

// Jobs lists every job in the workspace, newest first.
func (r *Runner) Jobs() ([]protocol.JobInfo, error) {
	var out []protocol.JobInfo
	err := r.st.Jobs(func(id string, raw []byte) error {
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		out = append(out, rec.Info)
		return nil
	})
	r.mu.Lock()
	for i := range out {
		if j, ok := r.running[out[i].ID]; ok {
			j.mu.Lock()
			out[i] = j.rec.Info
			j.mu.Unlock()
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created > out[j].Created })
	return out, err
}

// selectImages returns the images a job evaluates, in index order, without those it excludes.
func (r *Runner) selectImages(ds *dataset.Dataset, info protocol.JobInfo) []protocol.ImageInfo {
	var skip map[string]bool
	if len(info.Excluded) > 0 {
		skip = make(map[string]bool, len(info.Excluded))
		for _, id := range info.Excluded {
			skip[id] = true
		}
	}
	var out []protocol.ImageInfo
	for _, im := range ds.Images() {
		if im.Split == info.Split && (info.Category == "" || im.Category == info.Category) && !skip[im.ID] {
			out = append(out, im)
		}
	}
	return out
}

// MetricKey is the image's key in metric tables and in `rdre infer`/`eval` files: "KIND/STEM" (with the
// category first in a dataset of several).
func MetricKey(im protocol.ImageInfo) string {
	if im.Key != "" {
		return im.Key // the dataset's key: the same name infer and eval use
	}
	base := path.Base(im.ID)
	return im.Kind + "/" + strings.TrimSuffix(base, path.Ext(base))
}

// truth is what an evaluation compares an image's map against.
type truth struct {
	mask  []bool // nil = all normal
	label int    // 0 good, 1 defect
	kind  string // effective defect type, for the per-kind metrics
	ver   int    // workspace mask version used; 0 = the dataset's own ground truth
	// warnings about the dataset's mask (missing, empty, unknown encoding); none for workspace masks.
	warnings []string
}

// groundTruth returns the truth of im for this job. With workspace masks, a drawn mask overrides the
// dataset's: an empty one makes the image good, a mask on a good image makes it a defect of its main class.
func (r *Runner) groundTruth(ds *dataset.Dataset, info protocol.JobInfo, im protocol.ImageInfo) (truth, error) {
	if info.Masks == protocol.MasksWorkspace {
		m, v, err := r.st.Mask(info.Dataset, im.ID, 0)
		switch {
		case err == nil:
			if m.Count() == 0 {
				return truth{label: 0, kind: protocol.KindGood, ver: v}, nil
			}
			kind := im.Kind
			if kind == protocol.KindGood {
				kind = r.mainClass(info.Dataset, m.Pix)
			}
			return truth{mask: m.Binary(), label: 1, kind: kind, ver: v}, nil
		case !errors.Is(err, store.ErrNotFound):
			return truth{}, fmt.Errorf("workspace mask of %s: %w", im.ID, err)
		}
	}
	gt, err := ds.Truth(im.ID)
	if err != nil {
		return truth{}, fmt.Errorf("ground truth of %s: %w", im.ID, err)
	}
	t := truth{kind: im.Kind, mask: gt.Mask, warnings: gt.Warnings}
	if im.Kind != protocol.KindGood {
		t.label = 1
	}
	return t, nil
}

// mainClass names the label class holding most pixels of a label mask.
func (r *Runner) mainClass(datasetID string, pix []uint8) string {
	var counts [256]int
	for _, v := range pix {
		counts[v]++
	}
	best := 1
	for c := 2; c < 256; c++ {
		if counts[c] > counts[best] {
			best = c
		}
	}
	if cls, err := r.st.Classes(datasetID); err == nil {
		for _, c := range cls {
			if c.Index == best {
				return c.Name
			}
		}
	}
	return fmt.Sprintf("class%d", best)
}

// addNoise adds white Gaussian noise of standard deviation std (on [0,1] intensities) to img, with a
// seed derived from the image so that a rerun of the study sees the same noise.
func addNoise(img image.Image, std float64, seed string) image.Image {
	var h int64 = 1469598103934665603
	for i := 0; i < len(seed); i++ {
		h = (h ^ int64(seed[i])) * 1099511628211
	}
	rng := mrand.New(mrand.NewSource(h))
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			cr, cg, cb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			o := out.PixOffset(x, y)
			for c, v := range [3]uint32{cr, cg, cb} {
				f := float64(v>>8)/255 + rng.NormFloat64()*std
				out.Pix[o+c] = uint8(math.Round(math.Min(1, math.Max(0, f)) * 255))
			}
			out.Pix[o+3] = 255
		}
	}
	return out
}

// jobSortBudget bounds the exact metrics' pixel sort of a job (metrics.Options.SortBudget). It took the
// bottle job's peak memory from 2.1 GB to 1.25 GB (BenchmarkJob_Evaluate); the job still holds its maps.
const jobSortBudget = 256 << 20

// accOptions are the metric options of a job: the per-image detail always, the sort within
// jobSortBudget, and the job's calibrated threshold for SegF1 when it has one.
func accOptions(in protocol.JobInfo) metrics.Options {
	o := metrics.Options{Detail: true, SortBudget: jobSortBudget}
	if t := in.Threshold; t != nil {
		px := t.Pixel
		o.Threshold, o.ThresholdSource, o.ImageThreshold = &px, t.Source, t.Image
	}
	return o
}
