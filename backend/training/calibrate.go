//go:build !js

package training

import (
	"context"
	"fmt"

	"github.com/rdre-studio/studio/backend/calibrate"
	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Calibration on held-out normal images, with package calibrate. Nothing anomalous is seen, so the
// thresholds are quantiles of normal scores (a pixel or image is anomalous iff its score >= the
// threshold): PixelNormal lets at most 1 in 1000 held-out normal pixels through (pixel-fpr:0.001, at the
// model's resolution), ImageNormal none of the held-out normal images (image-fpr:0: just above the
// highest of their scores).
const (
	// Threshold keys added to the model's thresholds (beside the trainer's synthetic "pixel", "image").
	KeyPixelNormal = protocol.ThresholdPixelNormal
	KeyImageNormal = protocol.ThresholdImageNormal
	calibBatch     = 4
)

// calibMethods are the strategies of package calibrate behind KeyPixelNormal and KeyImageNormal.
var calibMethods = []calibrate.Method{{Name: calibrate.PixelFPR, Param: 0.001}, {Name: calibrate.ImageFPR, Param: 0}}

// calibrateRun computes the held-out thresholds of the exported model and records them.
func (r *Runner) calibrateRun(ctx context.Context, j *run, ds *dataset.Dataset, model string) error {
	j.mu.Lock()
	ids := append([]string(nil), j.rec.Calib...)
	j.mu.Unlock()
	if len(ids) == 0 {
		r.warn(j, "no held-out normal images: thresholds are the trainer's, from synthetic anomalies")
		return nil
	}
	if _, ok := inference.Initialized(); !ok {
		r.warn(j, "thresholds not calibrated on the %d held-out images: this server has no inference runtime (ONNX Runtime)", len(ids))
		return nil
	}
	th, skipped, err := Calibrate(ctx, ds, model, ids, inference.Options{Device: r.opt.InferDevice, Threads: r.opt.InferThreads, Batch: calibBatch})
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	for _, s := range skipped {
		r.warn(j, "calibration: %s", s)
	}
	j.mu.Lock()
	j.rec.Info.Thresholds = th
	j.mu.Unlock()
	return nil
}

// Calibrate runs the model over held-out normal images and returns the thresholds KeyPixelNormal and
// KeyImageNormal (calibMethods), plus a note for every image it could not read.
func Calibrate(ctx context.Context, ds *dataset.Dataset, modelPath string, ids []string, opt inference.Options) (map[string]float64, []string, error) {
	m, err := inference.Open(modelPath, opt)
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	preds, skipped, err := jobs.PredictImages(ctx, m, ds, ids, calibBatch)
	if err != nil {
		return nil, skipped, fmt.Errorf("held-out images: %w", err)
	}
	maps := make([]calibrate.Map, len(preds))
	for i, p := range preds {
		maps[i] = calibrate.Map{Values32: p.Raw, Score: p.Score}
	}
	res, err := calibrate.Calibrate(mapSource(maps), calibMethods)
	if err != nil {
		return nil, skipped, err
	}
	return map[string]float64{KeyPixelNormal: res.Pixel.Threshold, KeyImageNormal: res.Image.Threshold}, skipped, nil
}

// mapSource is a calibration set held in memory (model-resolution maps: a few hundred KiB each).
type mapSource []calibrate.Map

func (s mapSource) Len() int                          { return len(s) }
func (s mapSource) Load(i int) (calibrate.Map, error) { return s[i], nil }
