//go:build !js

package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"slices"
	"strings"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// partialEvery is how many finished images pass between two streamed partial results.
const partialEvery = 8

type loaded struct {
	im  protocol.ImageInfo
	img image.Image
	gt  truth
	err error
	// skip is set when the image itself cannot be read: the job reports it and goes on without it.
	skip error
}

func (r *Runner) execute(ctx context.Context, j *run) {
	// Ending the job also stops the decoders that run ahead of it.
	defer j.cancel()
	info := j.rec.Info
	ds, _ := r.srv.Dataset(info.Dataset)
	r.mu.Lock()
	me := r.models[info.Model]
	r.mu.Unlock()

	images := r.selectImages(ds, info)
	scored := map[string]protocol.ImageScore{}
	for _, s := range j.rec.Scores {
		scored[s.Image] = s
	}
	j.mu.Lock()
	j.rec.Info.State = protocol.JobRunning
	j.rec.Info.Total = len(images)
	if j.rec.Info.MaskVersions == nil {
		j.rec.Info.MaskVersions = map[string]int{}
	}
	j.rec.Info.Warnings, j.rec.Info.Skipped = nil, 0
	j.mu.Unlock()
	j.warn(ds.Info().Warnings...)
	r.broadcastProgress(j, nil)

	// Images already scored and cached are re-added from the workspace, not recomputed.
	var todo []protocol.ImageInfo
	for _, im := range images {
		s, ok := scored[im.ID]
		if !ok {
			todo = append(todo, im)
			continue
		}
		m, w, h, err := r.st.Map(info.ID, im.ID)
		if err != nil {
			todo = append(todo, im)
			continue
		}
		gt, err := r.groundTruth(ds, info, im)
		if err != nil {
			r.finish(j, err)
			return
		}
		score := s.Score
		if err := j.acc.Add(metrics.Image{Key: MetricKey(im), Kind: gt.kind, Label: gt.label, Score: &score, W: w, H: h, Map: m, Mask: gt.mask}); err != nil {
			r.finish(j, fmt.Errorf("metrics of %s: %w", im.ID, err))
			return
		}
		j.mu.Lock()
		if gt.ver > 0 {
			j.rec.Info.MaskVersions[im.ID] = gt.ver
		}
		j.mu.Unlock()
		j.warn(gt.warnings...)
	}
	if len(todo) == 0 {
		r.finish(j, nil)
		return
	}

	// Decoding runs ahead of inference in a bounded pool; inference takes batches in order.
	batch := me.model.Info().Batch
	if batch <= 0 {
		batch = 8
	}
	loadedCh := make(chan loaded, batch*2)
	go func() {
		defer close(loadedCh)
		results := make([]chan loaded, len(todo))
		for i := range results {
			results[i] = make(chan loaded, 1)
		}
		go func() {
			sem := make(chan struct{}, r.opt.Workers)
			for i, im := range todo {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					results[i] <- loaded{im: im, err: ctx.Err()}
					continue
				}
				go func() {
					defer func() { <-sem }()
					results[i] <- r.load(ds, info, im)
				}()
			}
		}()
		for i := range todo {
			l := <-results[i]
			loadedCh <- l
			if l.err != nil {
				return
			}
		}
	}()

	sincePartial := 0
	for {
		var group []loaded
		for len(group) < batch {
			l, ok := <-loadedCh
			if !ok {
				break
			}
			if l.err != nil {
				r.drain(loadedCh)
				r.finish(j, l.err)
				return
			}
			if l.skip != nil {
				j.mu.Lock()
				j.rec.Info.Skipped++
				j.mu.Unlock()
				j.warn(fmt.Sprintf("image %s skipped: %v", l.im.ID, l.skip))
				r.log.Warn("job: image skipped", "job", info.ID, "image", l.im.ID, "err", l.skip)
				continue
			}
			group = append(group, l)
		}
		if len(group) == 0 {
			break
		}
		if ctx.Err() != nil {
			r.drain(loadedCh)
			r.finish(j, ctx.Err())
			return
		}
		imgs := make([]image.Image, len(group))
		for i, l := range group {
			imgs[i] = l.img
		}
		preds, err := me.model.Predict(imgs)
		if err != nil {
			r.drain(loadedCh)
			r.finish(j, fmt.Errorf("inference: %w", err))
			return
		}
		var fresh []protocol.ImageScore
		for i, p := range preds {
			l := group[i]
			if err := r.st.PutModelMap(info.ID, l.im.ID, p.S, p.W, p.H, p.Raw); err != nil {
				r.drain(loadedCh)
				r.finish(j, fmt.Errorf("cache map of %s: %w", l.im.ID, err))
				return
			}
			score := p.Score
			if err := j.acc.Add(metrics.Image{Key: MetricKey(l.im), Kind: l.gt.kind, Label: l.gt.label, Score: &score, W: p.W, H: p.H, Map: p.Map, Mask: l.gt.mask}); err != nil {
				r.drain(loadedCh)
				r.finish(j, fmt.Errorf("metrics of %s: %w", l.im.ID, err))
				return
			}
			fresh = append(fresh, protocol.ImageScore{Image: l.im.ID, Key: MetricKey(l.im), Kind: l.gt.kind, Label: l.gt.label, Score: score})
			j.mu.Lock()
			if l.gt.ver > 0 {
				j.rec.Info.MaskVersions[l.im.ID] = l.gt.ver
			}
			j.mu.Unlock()
			j.warn(l.gt.warnings...)
		}
		j.mu.Lock()
		j.rec.Scores = append(j.rec.Scores, fresh...)
		j.rec.Info.Done = len(j.rec.Scores)
		rec := j.rec
		j.mu.Unlock()
		// The record follows the maps: a score is only recorded once its map is stored.
		if err := r.st.PutJob(info.ID, rec); err != nil {
			r.drain(loadedCh)
			r.finish(j, fmt.Errorf("record progress: %w", err))
			return
		}
		r.broadcastProgress(j, fresh)
		sincePartial += len(fresh)
		if sincePartial >= partialEvery {
			sincePartial = 0
			r.broadcastMetrics(j)
		}
	}
	r.finish(j, nil)
}

func (r *Runner) drain(ch <-chan loaded) {
	go func() {
		for range ch {
		}
	}()
}

func (r *Runner) load(ds *dataset.Dataset, info protocol.JobInfo, im protocol.ImageInfo) loaded {
	img, err := ds.Decode(im.ID)
	if err != nil {
		// One unreadable file (truncated, not an image) must not end an evaluation of hundreds.
		return loaded{im: im, skip: err}
	}
	if info.NoiseStd > 0 {
		img = addNoise(img, info.NoiseStd, info.ID+"/"+im.ID)
	}
	gt, err := r.groundTruth(ds, info, im)
	if err != nil {
		return loaded{im: im, err: err}
	}
	b := img.Bounds()
	if gt.mask != nil && len(gt.mask) != b.Dx()*b.Dy() {
		return loaded{im: im, err: fmt.Errorf("mask of %s has %d pixels, the image %dx%d", im.ID, len(gt.mask), b.Dx(), b.Dy())}
	}
	return loaded{im: im, img: img, gt: gt}
}

// finish records the end state and tells every client. err == nil means done.
func (r *Runner) finish(j *run, err error) {
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if closing && errors.Is(err, context.Canceled) {
		r.log.Info("job interrupted by shutdown; it resumes on the next start", "job", j.rec.Info.ID)
		return
	}
	j.mu.Lock()
	now := time.Now().UTC().Format(time.RFC3339)
	switch {
	case err == nil:
		j.rec.Info.State = protocol.JobDone
	case errors.Is(err, context.Canceled):
		j.rec.Info.State = protocol.JobCancelled
	default:
		j.rec.Info.State = protocol.JobFailed
		j.rec.Info.Error = err.Error()
	}
	j.rec.Info.Finished = now
	j.mu.Unlock()

	var result json.RawMessage
	if err == nil {
		res, ferr := j.acc.Final()
		if ferr != nil {
			j.mu.Lock()
			j.rec.Info.State = protocol.JobFailed
			j.rec.Info.Error = fmt.Sprintf("final metrics: %v", ferr)
			if j.rec.Info.Skipped > 0 {
				// With every image skipped, the reason is the skipped files, not the empty evaluation.
				j.rec.Info.Error += fmt.Sprintf(" (%d of %d images could not be read: %s)", j.rec.Info.Skipped, j.rec.Info.Total, strings.Join(j.rec.Info.Warnings, "; "))
			}
			j.mu.Unlock()
		} else {
			j.mu.Lock()
			res.Warnings = append(res.Warnings, j.rec.Info.Warnings...)
			j.mu.Unlock()
			result, _ = json.Marshal(res)
			if perr := r.st.PutResult(j.rec.Info.ID, result); perr != nil {
				r.log.Error("store result", "job", j.rec.Info.ID, "err", perr)
			}
		}
	}
	j.mu.Lock()
	rec := j.rec
	j.mu.Unlock()
	if perr := r.st.PutJob(rec.Info.ID, rec); perr != nil {
		r.log.Error("record job end", "job", rec.Info.ID, "err", perr)
	}
	r.log.Info("job ended", "job", rec.Info.ID, "state", rec.Info.State, "done", rec.Info.Done, "total", rec.Info.Total, "error", rec.Info.Error)
	env, _ := protocol.New("", protocol.TypeJobDone, protocol.JobState{Job: rec.Info, Scores: rec.Scores, Result: result})
	r.srv.Broadcast(env)
}

func (r *Runner) broadcastProgress(j *run, fresh []protocol.ImageScore) {
	j.mu.Lock()
	p := protocol.JobProgress{Job: j.rec.Info.ID, Done: len(j.rec.Scores), Total: j.rec.Info.Total, Scores: fresh}
	j.mu.Unlock()
	if p.Scores == nil {
		p.Scores = []protocol.ImageScore{}
	}
	env, _ := protocol.New("", protocol.TypeJobProgress, p)
	r.srv.Broadcast(env)
}

func (r *Runner) broadcastMetrics(j *run) {
	res := j.acc.Partial()
	if res == nil {
		return
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return
	}
	env, _ := protocol.New("", protocol.TypeJobMetrics, protocol.JobMetrics{Job: j.rec.Info.ID, Partial: true, Result: raw})
	r.srv.Broadcast(env)
}

// warn adds warnings to the job once each.
func (j *run) warn(ws ...string) {
	if len(ws) == 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, w := range ws {
		if !slices.Contains(j.rec.Info.Warnings, w) {
			j.rec.Info.Warnings = append(j.rec.Info.Warnings, w)
		}
	}
}
