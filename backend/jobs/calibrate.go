//go:build !js

package jobs

import (
	"context"
	"fmt"
	"image"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rdre-studio/studio/backend/calibrate"
	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/shared/protocol"
)

// DefaultCalibrationMethods is MVTec AD 2's baseline for pixels (mean + 3 std of normal pixels) and a
// 5 % image false-alarm rate.
const DefaultCalibrationMethods = "mean-kstd:3,image-fpr:0.05"

// Calibrate runs a registered model over the good images of a split that is not the test set, computes
// the thresholds with package calibrate, stores the calibration in the workspace and makes it the
// model's current one (ModelInfo.Calibration and Thresholds), which evaluations started afterwards use
// for SegF1. Images the model was trained on are left out (they score lower than unseen normal images and
// would make the thresholds too low).
func (r *Runner) Calibrate(ctx context.Context, req protocol.CalibrateRequest) (protocol.Calibration, error) {
	var zero protocol.Calibration
	if req.Methods == "" {
		req.Methods = DefaultCalibrationMethods
	}
	methods, err := calibrate.ParseMethods(req.Methods)
	if err != nil {
		return zero, err
	}
	ds, ok := r.srv.Dataset(req.Dataset)
	if !ok {
		return zero, fmt.Errorf("dataset %q: %w", req.Dataset, dataset.ErrNotFound)
	}
	if req.Split == "" {
		req.Split = protocol.SplitTrain
		for _, s := range ds.Info().Splits {
			if s == protocol.SplitValidation {
				req.Split = protocol.SplitValidation
			}
		}
	}
	if req.Split != protocol.SplitValidation && req.Split != protocol.SplitTrain {
		return zero, fmt.Errorf("calibrate on split %q: thresholds come from defect-free images that are not the test set (validation or train)", req.Split)
	}
	r.mu.Lock()
	me, ok := r.models[req.Model]
	r.mu.Unlock()
	if !ok {
		return zero, fmt.Errorf("model %q is not loaded (start serve with --model FILE)", req.Model)
	}
	trained := map[string]bool{}
	for _, id := range me.info.TrainedOn[req.Dataset] {
		trained[id] = true
	}
	var ids []string
	excluded := 0
	for _, im := range ds.Images() {
		if im.Split != req.Split || im.Kind != protocol.KindGood || (req.Category != "" && im.Category != req.Category) {
			continue
		}
		if trained[im.ID] {
			excluded++
			continue
		}
		ids = append(ids, im.ID)
	}
	if len(ids) == 0 {
		if excluded > 0 {
			return zero, fmt.Errorf("dataset %s has no good %s images to calibrate on that the model did not train on (%d left out)", req.Dataset, req.Split, excluded)
		}
		return zero, fmt.Errorf("dataset %s has no good %s images to calibrate on", req.Dataset, req.Split)
	}
	preds, skipped, err := PredictImages(ctx, me.model, ds, ids, r.opt.Batch)
	if err != nil {
		return zero, fmt.Errorf("calibrate model %s: %w", req.Model, err)
	}
	src := normalMaps(preds)
	res, err := calibrate.Calibrate(src, methods)
	if err != nil {
		return zero, fmt.Errorf("calibrate model %s on %s/%s: %w", req.Model, req.Dataset, req.Split, err)
	}
	c := protocol.Calibration{
		ID: newID(), Model: req.Model, Dataset: req.Dataset, Split: req.Split, Category: req.Category,
		Images: res.Normal.Images, Pixels: res.Normal.Pixels, PixelMean: res.Normal.PixelMean, PixelStd: res.Normal.PixelStd,
		Excluded: excluded, Skipped: skipped, Created: time.Now().UTC().Format(time.RFC3339),
	}
	for _, m := range methods {
		c.Methods = append(c.Methods, m.String())
	}
	if res.Pixel != nil {
		c.Pixel = &protocol.CalibratedThreshold{Method: res.Pixel.Method, Threshold: res.Pixel.Threshold, FPR: res.Pixel.FPR}
	}
	if res.Image != nil {
		c.Image = &protocol.CalibratedThreshold{Method: res.Image.Method, Threshold: res.Image.Threshold, FPR: res.Image.FPR}
	}
	if err := r.st.PutCalibration(c); err != nil {
		return zero, fmt.Errorf("store calibration: %w", err)
	}
	if _, err := r.UpdateModel(req.Model, func(mi *protocol.ModelInfo) { applyCalibration(mi, c) }); err != nil {
		return zero, err
	}
	r.log.Info("model calibrated", "model", req.Model[:min(12, len(req.Model))], "dataset", req.Dataset, "split", req.Split,
		"images", c.Images, "methods", strings.Join(c.Methods, ","))
	return c, nil
}

// applyCalibration makes c the model's current calibration.
func applyCalibration(mi *protocol.ModelInfo, c protocol.Calibration) {
	th := make(map[string]float64, len(mi.Thresholds)+2)
	for k, v := range mi.Thresholds {
		th[k] = v
	}
	delete(th, protocol.ThresholdPixelNormal)
	delete(th, protocol.ThresholdImageNormal)
	if c.Pixel != nil {
		th[protocol.ThresholdPixelNormal] = c.Pixel.Threshold
	}
	if c.Image != nil {
		th[protocol.ThresholdImageNormal] = c.Image.Threshold
	}
	mi.Thresholds = th
	cc := c
	mi.Calibration = &cc
}

// jobThreshold is the calibrated threshold an evaluation with this model uses, nil when it has none.
func jobThreshold(mi protocol.ModelInfo) *protocol.JobThreshold {
	px, ok := mi.Thresholds[protocol.ThresholdPixelNormal]
	if !ok {
		return nil
	}
	t := &protocol.JobThreshold{Pixel: px, Source: "calibrated on normal images"}
	if v, ok := mi.Thresholds[protocol.ThresholdImageNormal]; ok {
		t.Image = &v
	}
	if c := mi.Calibration; c != nil && c.Pixel != nil {
		t.Source = fmt.Sprintf("%s on %d good %s images of %s (%s)", c.Pixel.Method, c.Images, c.Split, c.Dataset, c.Created)
	} else if mi.Training != "" {
		t.Source = "calibrated on the held-out normal images of training run " + mi.Training
	}
	return t
}

// normalMaps is a calibration set kept at the model's resolution; Load brings a map to its image's size
// exactly as evaluation does (MapToImage), so the thresholds and an evaluation's SegF1 count the same
// pixels, while memory stays at S x S per image.
type normalMaps []inference.Prediction

func (n normalMaps) Len() int { return len(n) }

func (n normalMaps) Load(i int) (calibrate.Map, error) {
	p := n[i]
	m, err := inference.MapToImage(p.Raw, p.S, p.W, p.H)
	if err != nil {
		return calibrate.Map{}, err
	}
	return calibrate.Map{Values32: m, Score: p.Score}, nil
}

// PredictImages runs m over the images ids of ds in batches of batch (0: inference.DefaultBatch) and
// returns their predictions at the model's resolution (Raw, S, W, H, Score; Map and RawRD dropped, since
// a calibration set of many images must not hold full-size maps). Unreadable images are skipped and
// named in skipped; err is set when none could be read, or on a model error.
func PredictImages(ctx context.Context, m inference.Predictor, ds *dataset.Dataset, ids []string, batch int) (preds []inference.Prediction, skipped []string, err error) {
	if batch <= 0 {
		batch = inference.DefaultBatch
	}
	for lo := 0; lo < len(ids); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		var imgs []image.Image
		for _, id := range ids[lo:min(lo+batch, len(ids))] {
			img, err := ds.Decode(id)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("%s skipped: %v", id, err))
				continue
			}
			imgs = append(imgs, img)
		}
		if len(imgs) == 0 {
			continue
		}
		ps, err := m.Predict(imgs)
		if err != nil {
			return nil, nil, fmt.Errorf("inference: %w", err)
		}
		for _, p := range ps {
			p.Map, p.RawRD = nil, nil
			preds = append(preds, p)
		}
	}
	if len(preds) == 0 {
		return nil, skipped, fmt.Errorf("none of the %d images could be read", len(ids))
	}
	return preds, skipped, nil
}

// modelHandler serves GET /api/model?sha=SHA256: the model's ONNX file with its current calibration
// written into the metadata (rdre.thresholds gains pixel_normal and image_normal, rdre.calibration the
// provenance), so that the thresholds travel with the file to `rdre serve --model`, Triton, or any ONNX
// Runtime user. Graph and weights are the registered file's, byte for byte.
func (r *Runner) modelHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		sha := req.URL.Query().Get("sha")
		r.mu.Lock()
		me, ok := r.models[sha]
		r.mu.Unlock()
		if !ok {
			http.Error(w, "no loaded model has that sha256", http.StatusNotFound)
			return
		}
		if me.info.Device == "remote" || me.info.Path == "" {
			http.Error(w, "model "+me.info.Name+" runs on a remote server: download it from there", http.StatusNotFound)
			return
		}
		raw, err := os.ReadFile(me.info.Path)
		if err != nil {
			http.Error(w, fmt.Sprintf("read model %s: %v", me.info.Name, err), http.StatusInternalServerError)
			return
		}
		name := strings.TrimSuffix(filepath.Base(me.info.Path), ".onnx")
		if c := me.info.Calibration; c != nil {
			th := map[string]float64{}
			for _, k := range []string{protocol.ThresholdPixelNormal, protocol.ThresholdImageNormal} {
				if v, ok := me.info.Thresholds[k]; ok {
					th[k] = v
				}
			}
			if raw, err = inference.WithThresholds(raw, th, c); err != nil {
				http.Error(w, fmt.Sprintf("model %s: %v", me.info.Name, err), http.StatusInternalServerError)
				return
			}
			name += "-calibrated"
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".onnx"))
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		w.Write(raw)
	}
}
