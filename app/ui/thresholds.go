package ui

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// The thresholds panel of a finished evaluation: histograms of the normal and the anomalous scores
// (pixels and images) with the thresholds drawn on them, a draggable threshold with the FPR, TPR,
// precision and F1 it gives, and the calibration of the model on normal images.
//
// Exactness: image numbers are counted from the per-image scores. Pixel numbers come from the final
// result's pixel ROC curve: the slider moves over the curve's points (at most MaxCurvePoints), and at a
// point the counts are exact (the curve's FPR and TPR are exact at its thresholds); the histogram
// between points is drawn by linear interpolation, for the eye only.

// opPoint is one operating point: everything at or above Threshold is called anomalous.
type opPoint struct {
	Threshold float64
	FP, TP    float64 // normal and anomalous items at or above the threshold
}

// opStats are the rates of an operating point over n normal and p anomalous items.
type opStats struct{ FPR, TPR, Precision, F1 float64 }

func (o opPoint) stats(n, p float64) opStats {
	var s opStats
	if n > 0 {
		s.FPR = o.FP / n
	}
	if p > 0 {
		s.TPR = o.TP / p
	}
	if o.TP+o.FP > 0 {
		s.Precision = o.TP / (o.TP + o.FP)
	}
	if d := o.TP + o.FP + p; d > 0 {
		s.F1 = 2 * o.TP / d
	}
	return s
}

// pixelPoints are the operating points of the pixel ROC curve in ascending threshold order, with the
// numbers of normal and anomalous pixels.
func pixelPoints(r *metrics.Result) (pts []opPoint, n, p float64) {
	if r == nil || r.Curves == nil {
		return nil, 0, 0
	}
	n, p = float64(r.Counts.NormalPixels), float64(r.Counts.AnomalousPixels)
	c := r.Curves.PixelROC
	for i, t := range c.Threshold {
		if t == nil || i >= len(c.X) || i >= len(c.Y) {
			continue
		}
		pts = append(pts, opPoint{Threshold: *t, FP: math.Round(c.X[i] * n), TP: math.Round(c.Y[i] * p)})
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].Threshold < pts[j].Threshold })
	return pts, n, p
}

// imagePoints are the operating points at every distinct image score, ascending, counted exactly.
func imagePoints(rows []metrics.ImageDetail) (pts []opPoint, n, p float64) {
	sorted := append([]metrics.ImageDetail(nil), rows...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Score > sorted[j].Score })
	var fp, tp float64
	for i, d := range sorted {
		if d.Label == 1 {
			tp++
		} else {
			fp++
		}
		if i+1 == len(sorted) || sorted[i+1].Score != d.Score {
			pts = append(pts, opPoint{Threshold: d.Score, FP: fp, TP: tp})
		}
	}
	for i, j := 0, len(pts)-1; i < j; i, j = i+1, j-1 {
		pts[i], pts[j] = pts[j], pts[i]
	}
	return pts, fp, tp
}

// atOrAbove interpolates the cumulative counts at threshold t between the points (ascending).
func atOrAbove(pts []opPoint, t float64) (fp, tp float64) {
	if len(pts) == 0 {
		return 0, 0
	}
	if t <= pts[0].Threshold {
		return pts[0].FP, pts[0].TP
	}
	last := pts[len(pts)-1]
	if t > last.Threshold {
		return 0, 0
	}
	k := sort.Search(len(pts), func(i int) bool { return pts[i].Threshold >= t })
	a, b := pts[k-1], pts[k]
	f := (t - a.Threshold) / (b.Threshold - a.Threshold)
	return a.FP + f*(b.FP-a.FP), a.TP + f*(b.TP-a.TP)
}

// histogram bins the counts between the lowest and the highest threshold into bins of equal width:
// normal[k] and anomalous[k] are the shares of each class whose score lies in bin k.
func histogram(pts []opPoint, n, p float64, bins int) (lo, hi float64, normal, anomalous []float64) {
	if len(pts) < 2 || bins < 1 {
		return 0, 0, nil, nil
	}
	lo, hi = pts[0].Threshold, pts[len(pts)-1].Threshold
	normal, anomalous = make([]float64, bins), make([]float64, bins)
	for k := 0; k < bins; k++ {
		a := lo + (hi-lo)*float64(k)/float64(bins)
		b := lo + (hi-lo)*float64(k+1)/float64(bins)
		fa, ta := atOrAbove(pts, a)
		fb, tb := 0.0, 0.0
		if k < bins-1 {
			fb, tb = atOrAbove(pts, b)
		}
		if n > 0 {
			normal[k] = math.Max(0, fa-fb) / n
		}
		if p > 0 {
			anomalous[k] = math.Max(0, ta-tb) / p
		}
	}
	return lo, hi, normal, anomalous
}

// histogramSVG draws the two distributions and vertical lines at the marked thresholds.
func histogramSVG(testid string, lo, hi float64, normal, anomalous []float64, marks []thrMark) string {
	const w, h = 360.0, 110.0
	top := 1e-12
	for k := range normal {
		top = math.Max(top, math.Max(normal[k], anomalous[k]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg data-testid="%s" class="thr-hist" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="score histogram">`, testid, w, h+14, w, h+14) // the bars, then the marks on top
	bw := w / float64(len(normal))
	for k := range normal {
		for _, s := range []struct {
			v     float64
			color string
		}{{normal[k], "#3b82f6"}, {anomalous[k], "#f97316"}} {
			bh := s.v / top * h
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.55"/>`, float64(k)*bw, h-bh, bw, bh, s.color)
		}
	}
	for _, m := range marks {
		if hi <= lo || m.value < lo || m.value > hi {
			continue
		}
		x := (m.value - lo) / (hi - lo) * w
		fmt.Fprintf(&b, `<line data-mark="%s" x1="%.1f" x2="%.1f" y1="0" y2="%g" stroke="%s" stroke-width="2"%s><title>%s %.4g</title></line>`,
			m.name, x, x, h, m.color, map[bool]string{true: ` stroke-dasharray="4 3"`, false: ""}[m.dashed], m.name, m.value)
	}
	fmt.Fprintf(&b, `<text x="0" y="%g" font-size="10">%.4g</text><text x="%g" y="%g" font-size="10" text-anchor="end">%.4g</text></svg>`, h+12, lo, w, h+12, hi)
	return b.String()
}

type thrMark struct {
	name, color string
	value       float64
	dashed      bool
}

// thresholdPanel is the panel's state for the selected job.
type thresholdPanel struct {
	job        string
	pixelIdx   int // index into the pixel points; -1 = not chosen yet (the default)
	imageIdx   int
	split      string
	methods    string
	running    bool
	err        string
	calibrated *protocol.Calibration
}

func (s *Studio) thrPanel(job string) *thresholdPanel {
	if s.thr == nil || s.thr.job != job {
		s.thr = &thresholdPanel{job: job, pixelIdx: -1, imageIdx: -1}
	}
	return s.thr
}

// renderThresholds is the panel under a finished job's metrics.
func (s *Studio) renderThresholds(lj *liveJob) app.UI {
	r := lj.result
	if r == nil || !lj.final {
		return nil
	}
	tp := s.thrPanel(lj.info.ID)
	var calPx, calImg *float64
	if t := lj.info.Threshold; t != nil {
		calPx, calImg = &t.Pixel, t.Image
	} else if m := s.model(lj.info.Model); m != nil && m.Calibration != nil {
		if v, ok := m.Thresholds[protocol.ThresholdPixelNormal]; ok {
			calPx = &v
		}
		if v, ok := m.Thresholds[protocol.ThresholdImageNormal]; ok {
			calImg = &v
		}
	}
	body := []app.UI{app.H3().Text("Thresholds")}
	if pts, n, p := pixelPoints(r); len(pts) >= 2 {
		if tp.pixelIdx < 0 || tp.pixelIdx >= len(pts) {
			tp.pixelIdx = defaultIndex(pts, calPx, r.PixelF1MaxThreshold)
		}
		body = append(body, s.renderOperating("pixel", "Pixels", pts, n, p, &tp.pixelIdx, calPx, r.PixelF1MaxThreshold))
	}
	if pts, n, p := imagePoints(r.PerImage); len(pts) >= 2 && n > 0 && p > 0 {
		if tp.imageIdx < 0 || tp.imageIdx >= len(pts) {
			tp.imageIdx = defaultIndex(pts, calImg, r.ImageF1MaxThreshold)
		}
		body = append(body, s.renderOperating("image", "Images", pts, n, p, &tp.imageIdx, calImg, r.ImageF1MaxThreshold))
	}
	body = append(body, s.renderCalibration(lj, tp))
	return app.Div().Class("thresholds").Attr("data-testid", "thresholds").Body(body...)
}

// defaultIndex is the operating point of the calibrated threshold, else of the F1-max one.
func defaultIndex(pts []opPoint, calibrated, f1 *float64) int {
	switch {
	case calibrated != nil:
		return pointOf(pts, *calibrated)
	case f1 != nil:
		return pointOf(pts, *f1)
	}
	return len(pts) / 2
}

// pointOf is the operating point that threshold t gives: the lowest point at or above t (everything
// scoring >= t is exactly what scores >= that point), or the highest point when t is above them all.
func pointOf(pts []opPoint, t float64) int {
	k := sort.Search(len(pts), func(i int) bool { return pts[i].Threshold >= t })
	return min(k, len(pts)-1)
}

// renderOperating is one histogram with its slider and the numbers at the chosen threshold.
func (s *Studio) renderOperating(kind, title string, pts []opPoint, n, p float64, idx *int, calibrated, f1 *float64) app.UI {
	lo, hi, normal, anomalous := histogram(pts, n, p, 48)
	cur := pts[*idx]
	marks := []thrMark{{name: "chosen", color: "#111827", value: cur.Threshold}}
	if f1 != nil {
		marks = append(marks, thrMark{name: "f1-max", color: "#16a34a", value: *f1, dashed: true})
	}
	if calibrated != nil {
		marks = append(marks, thrMark{name: "calibrated", color: "#9333ea", value: *calibrated, dashed: true})
	}
	st := cur.stats(n, p)
	unit := map[string]string{"pixel": "pixels", "image": "images"}[kind]
	jump := func(label, testid string, v *float64) app.UI {
		if v == nil {
			return nil
		}
		return app.Button().Class("link").Attr("data-testid", testid).Text(fmt.Sprintf("%s %.4g", label, *v)).
			OnClick(func(ctx app.Context, e app.Event) { *idx = pointOf(pts, *v) })
	}
	return app.Div().Class("operating").Attr("data-testid", "op-"+kind).Body(
		app.P().Body(app.Strong().Text(title), app.Span().Class("muted").Text(fmt.Sprintf(
			" · normal (blue) and anomalous (orange) %s, each as a share of its own count", unit))),
		app.Raw(histogramSVG("hist-"+kind, lo, hi, normal, anomalous, marks)),
		app.Input().Type("range").Attr("data-testid", "thr-slider-"+kind).Class("thr-slider").
			Attr("min", 0).Attr("max", len(pts)-1).Attr("step", 1).Value(strconv.Itoa(*idx)).
			Title("Drag to move the threshold (anomalous iff score ≥ threshold)").
			OnInput(func(ctx app.Context, e app.Event) {
				if v, err := strconv.Atoi(ctx.JSSrc().Get("value").String()); err == nil && v >= 0 && v < len(pts) {
					*idx = v
				}
			}),
		app.P().Class("num").Attr("data-testid", "thr-stats-"+kind).
			Attr("data-threshold", strconv.FormatFloat(cur.Threshold, 'g', -1, 64)).
			Attr("data-fpr", strconv.FormatFloat(st.FPR, 'g', -1, 64)).
			Attr("data-tpr", strconv.FormatFloat(st.TPR, 'g', -1, 64)).
			Attr("data-f1", strconv.FormatFloat(st.F1, 'g', -1, 64)).
			Text(fmt.Sprintf("threshold %.4g · FPR %.2f %% · TPR %.2f %% · precision %.2f %% · F1 %.4f (%d of %d normal %s, %d of %d anomalous at or above)",
				cur.Threshold, 100*st.FPR, 100*st.TPR, 100*st.Precision, st.F1, int64(cur.FP), int64(n), unit, int64(cur.TP), int64(p))),
		app.P().Class("row").Body(jump("F1-max", "thr-f1-"+kind, f1), jump("calibrated", "thr-cal-"+kind, calibrated)),
	)
}

// renderCalibration offers the calibration of the job's model on normal images, and its result.
func (s *Studio) renderCalibration(lj *liveJob, tp *thresholdPanel) app.UI {
	m := s.model(lj.info.Model)
	if m == nil {
		return nil
	}
	if tp.methods == "" {
		tp.methods = "mean-kstd:3,image-fpr:0.05"
	}
	cal := m.Calibration
	if tp.calibrated != nil && tp.calibrated.Model == m.SHA256 {
		cal = tp.calibrated
	}
	var summary app.UI = app.Span().Class("muted").Attr("data-testid", "calibration").Text("not calibrated on normal images: SegF1 and the editor use the F1-max threshold")
	px, hasPx := m.Thresholds[protocol.ThresholdPixelNormal]
	if cal == nil && hasPx {
		// Thresholds that training calibrated on its held-out normal images (no workspace record).
		txt := fmt.Sprintf("Calibrated by its training run %s on held-out normal images: pixel %.4g", m.Training, px)
		if im, ok := m.Thresholds[protocol.ThresholdImageNormal]; ok {
			txt += fmt.Sprintf(", image %.4g", im)
		}
		summary = app.Span().Attr("data-testid", "calibration").Attr("data-id", "training:"+m.Training).Text(txt + ". Evaluations compute SegF1 at it.")
	}
	if cal != nil {
		parts := []string{}
		if cal.Pixel != nil {
			parts = append(parts, fmt.Sprintf("pixel %.4g (%s, %.3f %% of normal pixels above)", cal.Pixel.Threshold, cal.Pixel.Method, 100*cal.Pixel.FPR))
		}
		if cal.Image != nil {
			parts = append(parts, fmt.Sprintf("image %.4g (%s)", cal.Image.Threshold, cal.Image.Method))
		}
		summary = app.Span().Attr("data-testid", "calibration").Attr("data-id", cal.ID).Text(fmt.Sprintf("Calibrated on %d good %s images of %s, %s: %s. Evaluations started from now on compute SegF1 at it.",
			cal.Images, cal.Split, cal.Dataset, cal.Created, strings.Join(parts, "; ")))
	}
	var splits []string
	if d := s.dataset(s.dsID); d != nil {
		for _, sp := range []string{protocol.SplitValidation, protocol.SplitTrain} {
			if slices.Contains(d.Splits, sp) {
				splits = append(splits, sp)
			}
		}
	}
	if len(splits) == 0 {
		return app.Div().Class("calibrate").Body(
			app.P().Body(summary),
			app.P().Class("muted").Attr("data-testid", "calibrate-unavailable").Text("This dataset has no validation or train split: every image is a test image, "+
				"and thresholds must not come from the test set. Train a model here (it holds out normal images to calibrate on), or calibrate on another folder of defect-free images with rdre calibrate."),
		)
	}
	if !slices.Contains(splits, tp.split) {
		tp.split = splits[0]
	}
	return app.Div().Class("calibrate").Body(
		app.P().Body(summary),
		app.Div().Class("row").Body(
			app.Label().Title("Defect-free images that are not the test set").Body(
				app.Text("Calibrate on the good images of "),
				app.Select().Attr("data-testid", "calibrate-split").OnChange(func(ctx app.Context, e app.Event) { tp.split = selectValue(ctx) }).Body(
					app.Range(splits).Slice(func(i int) app.UI { return option(splits[i], splits[i], tp.split) }),
				),
			),
			app.Label().Title("mean-kstd:K (mean + K std of normal pixels), pixel-fpr:Q, image-fpr:Q").Body(
				app.Text(" methods "),
				app.Input().Attr("data-testid", "calibrate-methods").Value(tp.methods).Style("width", "14em").
					OnChange(func(ctx app.Context, e app.Event) { tp.methods = ctx.JSSrc().Get("value").String() }),
			),
			app.Button().Attr("data-testid", "calibrate").Disabled(tp.running).Text(map[bool]string{true: "Calibrating…", false: "Calibrate"}[tp.running]).
				OnClick(func(ctx app.Context, e app.Event) { s.calibrate(ctx, lj.info, tp) }),
			app.If(m.Device != "remote", func() app.UI {
				return app.A().Class("button").Attr("data-testid", "model-download").Href("/api/model?"+url.Values{"sha": {m.SHA256}}.Encode()).
					Attr("download", "").Title("The ONNX file with the current calibration in its metadata (rdre.thresholds)").Text("Download model")
			}),
		),
		app.If(tp.err != "", func() app.UI { return app.P().Class("error-text").Attr("data-testid", "calibrate-error").Text(tp.err) }),
	)
}

// calibrationTimeout bounds a calibration request: inference over a whole split.
const calibrationTimeout = 30 * time.Minute

func (s *Studio) calibrate(ctx app.Context, job protocol.JobInfo, tp *thresholdPanel) {
	req := protocol.CalibrateRequest{Model: job.Model, Dataset: job.Dataset, Split: tp.split, Category: job.Category, Methods: tp.methods}
	tp.running, tp.err = true, ""
	ctx.Async(func() {
		cctx, cancel := context.WithTimeout(context.Background(), calibrationTimeout)
		defer cancel()
		var c protocol.Calibration
		err := wsClient().Request(cctx, protocol.TypeModelCalibrate, req, &c)
		s.mctx.Dispatch(func(ctx app.Context) {
			tp.running = false
			if err != nil {
				tp.err = "calibration failed: " + err.Error()
				return
			}
			tp.calibrated = &c
			tp.imageIdx, tp.pixelIdx = -1, -1 // back to the defaults: the new calibrated thresholds
			s.loadModels(ctx)
		})
	})
}

// onModelsPush takes the model list that the server pushes when a model changes (a calibration).
func (s *Studio) onModelsPush(env protocol.Envelope) {
	var rep protocol.ModelsReply
	if err := decodeLoose(env.Payload, &rep); err == nil && len(rep.Models) > 0 {
		s.models = rep.Models
	}
}
