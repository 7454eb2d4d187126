package ui

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// heatState is the anomaly map of the open image for the selected evaluation job.
type heatState struct {
	job      string
	on       bool
	loading  bool
	err      string
	heat     []uint8 // the map as the browser decodes the server's PNG: 0..255 over min..max
	min, max float64 // the image's own range, in the model's units (X-Map-Min, X-Map-Max)
	cmap     string
	lut      [256][3]uint8
	// thr is the threshold in the model's units, the same on every image of the job. thrSet is false
	// until it is the job's pixel F1-max threshold or a value the user chose.
	thr     float64
	thrSet  bool
	compare bool
	opacity float64
	canvas  app.Value
	cctx    app.Value
}

func (h *heatState) ready() bool { return h != nil && h.heat != nil }

// heatScale is the colour scale of the job's maps: the lowest and highest pixel score of the whole
// evaluation, the ends of its pixel ROC curve. It is the rule of the HTML report (mapRange in
// backend/report/gallery.go), so a score has one colour in the editor, on every image, and in the
// report. job is false while the job has no such curve yet: the image's own range stands in.
func (s *Studio) heatScale(h *heatState) (lo, hi float64, job bool) {
	if lj := s.live[h.job]; lj != nil && lj.result != nil && lj.result.Curves != nil {
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, t := range lj.result.Curves.PixelROC.Threshold {
			if t != nil {
				lo, hi = math.Min(lo, *t), math.Max(hi, *t)
			}
		}
		if hi > lo {
			return lo, hi, true
		}
	}
	return h.min, h.max, false
}

// settleThreshold gives the threshold its default: the threshold calibrated on normal images that the
// job used for SegF1 (fixed when the job started), else the job's pixel F1-max threshold, else the
// middle of the scale.
func (s *Studio) settleThreshold(h *heatState) {
	if h == nil || h.thrSet {
		return
	}
	lo, hi, _ := s.heatScale(h)
	h.thr = (lo + hi) / 2
	if lj := s.live[h.job]; lj != nil && lj.info.Threshold != nil {
		h.thr, h.thrSet = lj.info.Threshold.Pixel, true
		return
	}
	if lj := s.live[h.job]; lj != nil && lj.result != nil {
		if t := lj.result.PixelF1MaxThreshold; t != nil {
			h.thr = *t
		}
		// A running job's threshold is an estimate that moves: it stays the default until the end.
		h.thrSet = lj.final
	}
}

// heatTables maps each decoded map level to its index on the job's colour scale and to whether it is
// at or above the threshold, both in the model's units.
func (s *Studio) heatTables(h *heatState) (idx [256]uint8, pred [256]bool) {
	lo, hi, _ := s.heatScale(h)
	for c := range idx {
		v := h.min + float64(c)/255*(h.max-h.min)
		pred[c] = v >= h.thr
		if hi > lo {
			idx[c] = uint8(math.Round(math.Max(0, math.Min(1, (v-lo)/(hi-lo))) * 255))
		}
	}
	return idx, pred
}

// loadJobs fetches the evaluation jobs of the current dataset. A server without jobs (or an older
// one) simply leaves the list empty: heatmaps stay hidden. A running job that another client started
// is followed when this page shows none.
func (s *Studio) loadJobs(ctx app.Context) {
	ds := s.dsID
	s.jobsDS = ds
	ctx.Async(func() {
		var rep protocol.JobsReply
		err := request(protocol.TypeJobsList, nil, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			if s.dsID != ds {
				return
			}
			s.jobs = s.jobs[:0]
			if err != nil {
				return
			}
			for _, j := range rep.Jobs {
				lj := s.liveJobOf(j.ID)
				lj.setInfo(j)
				lj.listed = true
				if j.Dataset == ds && j.State != protocol.JobFailed && j.State != protocol.JobCancelled {
					s.jobs = append(s.jobs, lj.info)
				}
			}
			sort.Slice(s.jobs, func(a, b int) bool { return s.jobs[a].Created > s.jobs[b].Created })
			s.followRunningJob(ctx)
		})
	})
}

// loadScores fetches a snapshot of the selected job (scores, state, result) and merges it with what
// the pushes already brought.
func (s *Studio) loadScores(ctx app.Context) {
	job := s.jobID
	s.scoresJob = job
	ctx.Async(func() {
		var st protocol.JobState
		err := request(protocol.TypeJobGet, protocol.JobRef{Job: job}, &st)
		s.mctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				if s.jobID == job {
					s.err = fmt.Sprintf("loading scores of job %s: %v", job, err)
				}
				return
			}
			lj := s.liveJobOf(job)
			if err := lj.applyState(st); err != nil {
				s.err = err.Error()
			}
			s.upsertJob(lj.info)
			if ed := s.ed; ed != nil && ed.heat != nil && ed.heat.job == job {
				// The job's scale and F1-max threshold arrive with its result.
				s.paintHeat(ed)
			}
		})
	})
}

// loadHeat fetches the open image's anomaly map (a 16-bit grey PNG with its range in X-Map-Min and
// X-Map-Max) and scales it to the image size. The browser decodes it to 8 bits, which is plenty for
// display and for a threshold slider.
func (s *Studio) loadHeat(ed *editorState) {
	h := ed.heat
	if h == nil || h.loading || h.ready() || h.job == "" {
		return
	}
	h.loading = true
	u := apiURL("/api/heatmap", "job", h.job, "id", ed.image)
	fail := func(msg string) {
		s.mctx.Dispatch(func(app.Context) { h.loading, h.err = false, msg })
	}
	app.Window().Call("fetch", u).Then(func(resp app.Value) {
		if !resp.Get("ok").Bool() {
			fail(fmt.Sprintf("no heatmap for this image (HTTP %d)", resp.Get("status").Int()))
			return
		}
		hdr := resp.Get("headers")
		lo, errLo := strconv.ParseFloat(hdr.Call("get", "X-Map-Min").String(), 64)
		hi, errHi := strconv.ParseFloat(hdr.Call("get", "X-Map-Max").String(), 64)
		if errLo != nil || errHi != nil {
			lo, hi = 0, 1
		}
		resp.Call("blob").Then(func(blob app.Value) {
			app.Window().Call("createImageBitmap", blob).Then(func(bmp app.Value) {
				doc := app.Window().Get("document")
				c := doc.Call("createElement", "canvas")
				c.Set("width", ed.w)
				c.Set("height", ed.h)
				cx := c.Call("getContext", "2d")
				cx.Call("drawImage", bmp, 0, 0, ed.w, ed.h)
				buf := make([]byte, ed.w*ed.h*4)
				app.CopyBytesToGo(buf, cx.Call("getImageData", 0, 0, ed.w, ed.h).Get("data"))
				heat := make([]uint8, ed.w*ed.h)
				for i := range heat {
					heat[i] = buf[i*4]
				}
				s.mctx.Dispatch(func(ctx app.Context) {
					h.loading, h.heat, h.min, h.max = false, heat, lo, hi
					ctx.Defer(func(app.Context) { s.paintHeat(ed) })
				})
			})
		})
	})
}

// paintHeat renders the heat layer after a change of map, threshold, colormap, mode or mask.
func (s *Studio) paintHeat(ed *editorState) {
	h := ed.heat
	if !h.ready() || !h.on || !ed.ready() {
		return
	}
	s.settleThreshold(h)
	if h.canvas == nil || !h.canvas.Truthy() || !h.canvas.Get("isConnected").Bool() {
		h.canvas = app.Window().GetElementByID("heat-canvas")
		if !h.canvas.Truthy() {
			return
		}
		h.cctx = h.canvas.Call("getContext", "2d")
	}
	idx, pred := s.heatTables(h)
	buf := make([]byte, ed.w*ed.h*4)
	heatRGBA(buf, h.heat, ed.ed.Pix, ed.w, ed.h, &h.lut, &idx, &pred, h.compare)
	img := h.cctx.Call("createImageData", ed.w, ed.h)
	app.CopyBytesToJS(img.Get("data"), buf)
	h.cctx.Call("putImageData", img, 0, 0)
}

// draftFromPrediction replaces the mask with the thresholded prediction, as one undoable edit.
func (s *Studio) draftFromPrediction() {
	ed := s.ed
	if !ed.ready() || !ed.heat.ready() {
		return
	}
	s.settleThreshold(ed.heat)
	_, pred := s.heatTables(ed.heat)
	pix := make([]uint8, ed.w*ed.h)
	for i, v := range ed.heat.heat {
		if pred[v] {
			pix[i] = uint8(ed.cls)
		}
	}
	r, err := ed.ed.Replace(pix)
	if err != nil {
		s.err = err.Error()
		return
	}
	ed.paint(r)
	s.changed()
}

// renderHeatLayer is the heat canvas, rendered (hidden) even without a job so the layers keep their
// places. In comparison mode it moves above the mask and the ground truth: the comparison is about them.
func (s *Studio) renderHeatLayer() app.UI {
	ed := s.ed
	h := ed.heat
	c := app.Canvas().ID("heat-canvas").Class("layer heat").Attr("data-testid", "heatmap-canvas").Width(ed.w).Height(ed.h)
	if h == nil {
		return c.Style("visibility", "hidden")
	}
	lo, hi, job := s.heatScale(h)
	if job {
		c = c.Attr("data-scale-lo", strconv.FormatFloat(lo, 'g', -1, 64)).Attr("data-scale-hi", strconv.FormatFloat(hi, 'g', -1, 64))
	}
	if h.compare {
		c = c.Class("compare")
	}
	return c.Style("opacity", "%.2f", h.opacity).Style("visibility", "%s", shown(h.on && h.ready()))
}

func (s *Studio) renderHeatControls() app.UI {
	ed := s.ed
	h := ed.heat
	if h == nil {
		return nil
	}
	score, hasScore := s.scores[ed.image]
	s.settleThreshold(h)
	lo, hi, _ := s.heatScale(h)
	if !(hi > lo) {
		lo, hi = h.thr, h.thr+1
	}
	thrValue := ""
	if h.thrSet {
		thrValue = fmtFloat(h.thr)
	}
	return app.Div().Class("group").Body(
		app.H3().Text("Anomaly map"),
		app.If(hasScore, func() app.UI {
			return app.P().Class("row").Body(app.Text("image score "), app.Span().Class("num").Attr("data-testid", "image-score").Text(fmt.Sprintf("%.4f", score)))
		}),
		checkbox("heatmap-toggle", "heatmap (o)", h.on, func(v bool) {
			h.on = v
			s.loadHeat(ed)
			s.mctx.Defer(func(app.Context) { s.paintHeat(ed) })
		}),
		app.If(h.err != "", func() app.UI { return app.P().Class("muted").Text(h.err) }),
		app.If(h.loading, func() app.UI { return app.P().Class("muted").Text("loading the map…") }),
		app.Label().Class("row").Body(
			app.Text("Colormap "),
			app.Select().Attr("data-testid", "heatmap-colormap").OnChange(func(ctx app.Context, e app.Event) {
				h.cmap = ctx.JSSrc().Get("value").String()
				h.lut = colormap(h.cmap)
				s.paintHeat(ed)
			}).Body(app.Range(colormapNames).Slice(func(i int) app.UI { return option(colormapNames[i], colormapNames[i], h.cmap) })),
		),
		slider("Opacity ", "heatmap-opacity", 0, 100, int(h.opacity*100), func(v int) { h.opacity = float64(v) / 100 }),
		// The slider runs over fixed steps of the job's range: go-app sets attributes in no fixed order,
		// and a value set before a changed min, max or step would be clamped to the old ones.
		slider("Threshold ", "threshold-slider", 0, thrSteps, thrStep(h.thr, lo, hi), func(k int) {
			h.thr, h.thrSet = lo+float64(k)/thrSteps*(hi-lo), true
			s.paintHeat(ed)
		}, app.Span().Class("num").Attr("data-testid", "threshold-value").Attr("data-value", thrValue).
			Title("In the model's units, the same on every image of this job; it starts at the job's pixel F1-max threshold").
			Text(strconv.FormatFloat(h.thr, 'g', 4, 64))),
		checkbox("compare-toggle", "compare with the mask (c)", h.compare, func(v bool) {
			h.compare = v
			s.paintHeat(ed)
		}),
		app.P().Class("legend").Hidden(!h.compare).Body(
			app.Span().Class("tp").Text("■ true positive "),
			app.Span().Class("fp").Text("■ false positive "),
			app.Span().Class("fn").Text("■ missed"),
		),
		app.Button().Text("Draft mask from prediction").Attr("data-testid", "draft-from-prediction").Disabled(!h.ready()).
			Title("Replace the mask with the pixels above the threshold (undo with Ctrl+Z)").
			OnClick(func(ctx app.Context, e app.Event) { s.draftFromPrediction() }),
	)
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// thrSteps is the threshold slider's resolution over the job's score range.
const thrSteps = 1000

// thrStep is the slider position nearest to the threshold t on the scale lo..hi.
func thrStep(t, lo, hi float64) int {
	return int(math.Round(math.Max(0, math.Min(1, (t-lo)/(hi-lo))) * thrSteps))
}
