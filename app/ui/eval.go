package ui

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// Model list states of the evaluation panel.
const (
	modelsUnknown = ""
	modelsLoading = "loading"
	modelsReady   = "ready"
	modelsNone    = "none" // the server runs without --model (or without a job system)
)

// liveJobOf returns the page's record of a job, creating it on first mention.
func (s *Studio) liveJobOf(id string) *liveJob {
	if s.live == nil {
		s.live = map[string]*liveJob{}
	}
	lj, ok := s.live[id]
	if !ok {
		lj = newLiveJob(id)
		s.live[id] = lj
	}
	return lj
}

// selectJob makes id the job whose scores, heatmaps and metrics the views show. The scores map is
// the live job's own, so pushes update the grid without copying.
func (s *Studio) selectJob(id string) {
	s.jobID = id
	if id == "" {
		s.scores, s.scoresJob = nil, ""
		return
	}
	s.scores = s.liveJobOf(id).scores
}

// loadModels asks the server which models it can evaluate with. A server started without --model has
// no job system and answers models.list with an "unknown" error: the panel then explains how to add one.
func (s *Studio) loadModels(ctx app.Context) {
	s.modelsState = modelsLoading
	ctx.Async(func() {
		var rep protocol.ModelsReply
		err := request(protocol.TypeModelsList, nil, &rep)
		s.mctx.Dispatch(func(ctx app.Context) {
			var se *ServerError
			switch {
			case errors.As(err, &se) && se.Code == protocol.CodeUnknown:
				s.modelsState, s.models = modelsNone, nil
			case err != nil:
				// Retried on the next load (a reconnect, a navigation).
				s.modelsState = modelsUnknown
				s.evalErr = fmt.Sprintf("listing models: %v", err)
			default:
				s.models = rep.Models
				s.modelsState = modelsReady
				if len(rep.Models) == 0 {
					s.modelsState = modelsNone
				}
				if s.modelSel == "" || s.model(s.modelSel) == nil {
					s.modelSel = defaultModel(rep.Models, s.dsID)
				}
			}
		})
	})
}

func (s *Studio) model(sha string) *protocol.ModelInfo {
	for i := range s.models {
		if s.models[i].SHA256 == sha {
			return &s.models[i]
		}
	}
	return nil
}

// startEvaluation sends job.start for the current dataset and selects the new job.
func (s *Studio) startEvaluation(ctx app.Context) {
	req := protocol.JobStartRequest{Dataset: s.dsID, Model: s.modelSel, Split: protocol.SplitTest, Masks: s.masksSel}
	if req.Masks == "" {
		req.Masks = protocol.MasksDataset
	}
	if d := s.dataset(s.dsID); d != nil && len(d.Categories) > 1 {
		req.Category = s.categorySel
		if req.Category == "" {
			req.Category = d.Categories[0]
		}
	}
	if s.noiseSel != "" {
		v, err := strconv.ParseFloat(s.noiseSel, 64)
		if err != nil || v < 0 || v > 1 {
			s.evalErr = fmt.Sprintf("noise σ %q: want a number in [0, 1]", s.noiseSel)
			return
		}
		req.NoiseStd = v
	}
	s.starting, s.evalErr = true, ""
	perf := app.Window().Get("performance")
	mark := app.Window().Get("Object").New()
	mark.Set("clickAt", perf.Call("now").Float())
	app.Window().Set("rdreEval", mark)
	ctx.Async(func() {
		var info protocol.JobInfo
		err := request(protocol.TypeJobStart, req, &info)
		s.mctx.Dispatch(func(ctx app.Context) {
			s.starting = false
			if err != nil {
				s.evalErr = fmt.Sprintf("starting the evaluation: %v", err)
				return
			}
			app.Window().Get("rdreEval").Set("job", info.ID)
			s.liveJobOf(info.ID).setInfo(info)
			s.upsertJob(info)
			s.selectJob(info.ID)
			// Anything pushed before the reply is already in the live job; the snapshot would add
			// nothing, so the job counts as loaded.
			s.scoresJob = info.ID
			s.compareSel = ""
			ctx.Navigate(s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine))
		})
	})
}

func (s *Studio) cancelEvaluation(ctx app.Context, job string) {
	s.cancelling = job
	ctx.Async(func() {
		var info protocol.JobInfo
		err := request(protocol.TypeJobCancel, protocol.JobRef{Job: job}, &info)
		s.mctx.Dispatch(func(ctx app.Context) {
			s.cancelling = ""
			if err != nil {
				s.evalErr = fmt.Sprintf("cancelling job %s: %v", job, err)
				return
			}
			s.liveJobOf(job).setInfo(info)
			s.upsertJob(info)
		})
	})
}

// upsertJob keeps the job list (the job and compare selects) in step with what the page learns.
func (s *Studio) upsertJob(info protocol.JobInfo) {
	if info.Dataset == "" || info.Dataset != s.jobsDS {
		return
	}
	for i := range s.jobs {
		if s.jobs[i].ID == info.ID {
			s.jobs[i] = info
			return
		}
	}
	s.jobs = append(s.jobs, info)
	sort.Slice(s.jobs, func(a, b int) bool { return s.jobs[a].Created > s.jobs[b].Created })
}

// onJobPush handles the job stream the server sends every client.
func (s *Studio) onJobPush(ctx app.Context, env protocol.Envelope) {
	now := app.Window().Get("performance").Call("now").Float()
	switch env.Type {
	case protocol.TypeJobProgress:
		var p protocol.JobProgress
		if err := decodeLoose(env.Payload, &p); err != nil {
			s.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
		lj := s.liveJobOf(p.Job)
		lj.applyProgress(p)
		markEval(p.Job, "firstProgressAt", now)
		if len(p.Scores) > 0 {
			markEval(p.Job, "firstScoreAt", now)
		}
		s.upsertJob(lj.info)
		if lj.info.Dataset == "" && !lj.listed {
			// A job another tab started: find out which dataset it evaluates.
			lj.listed = true
			s.loadJobs(ctx)
		}
		if s.ed != nil && s.ed.heat != nil && s.ed.heat.job == p.Job && s.ed.heat.err != "" {
			// The open image's map did not exist when the editor asked; it may now.
			for _, sc := range p.Scores {
				if sc.Image == s.ed.image {
					s.ed.heat.err = ""
					s.loadHeat(s.ed)
				}
			}
		}
	case protocol.TypeJobMetrics:
		var m protocol.JobMetrics
		if err := decodeLoose(env.Payload, &m); err != nil {
			s.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
		if err := s.liveJobOf(m.Job).applyMetrics(m); err != nil {
			s.err = err.Error()
		}
	case protocol.TypeJobDone:
		var st protocol.JobState
		if err := decodeLoose(env.Payload, &st); err != nil {
			s.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
		lj := s.liveJobOf(st.Job.ID)
		if err := lj.applyState(st); err != nil {
			s.err = err.Error()
		}
		markEval(st.Job.ID, "finalAt", now)
		s.upsertJob(lj.info)
	}
}

// markEval records, once, when something happened to the job last started from this page
// (window.rdreEval: clickAt, firstProgressAt, firstScoreAt, finalAt in performance.now() ms).
func markEval(job, key string, at float64) {
	m := app.Window().Get("rdreEval")
	if !m.Truthy() || m.Get("job").String() != job || m.Get(key).Truthy() {
		return
	}
	m.Set(key, at)
}

// followRunningJob shows a job that another client started on this dataset, when this page shows none.
// Otherwise, the first time a dataset's grid opens without a job in its URL, it shows the dataset's
// newest finished evaluation: after a reload or from a bookmark the user sees the scores they last saw
// rather than a bare grid, and can still choose "none" in the Model job list.
func (s *Studio) followRunningJob(ctx app.Context) {
	if s.jobID != "" || s.view != viewGrid {
		return
	}
	pick := ""
	for _, j := range s.jobs {
		if lj := s.liveJobOf(j.ID); lj.running() {
			pick = j.ID
			break
		}
	}
	if pick == "" && s.autoJobDS != s.dsID {
		for _, j := range s.jobs { // newest first
			if j.State == protocol.JobDone {
				pick = j.ID
				break
			}
		}
	}
	s.autoJobDS = s.dsID
	if pick == "" {
		return
	}
	s.selectJob(pick)
	s.scoresJob = ""
	ctx.Navigate(s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine))
}

func (s *Studio) renderEvalPanel() app.UI {
	d := s.dataset(s.dsID)
	var lj *liveJob
	if s.jobID != "" {
		lj = s.liveJobOf(s.jobID)
	}
	busy := lj != nil && lj.running()
	body := []app.UI{app.H2().Body(
		app.Button().Class("link collapse").Attr("data-testid", "eval-collapse").
			Attr("aria-expanded", fmt.Sprint(!s.evalClosed)).Title("Show or hide the evaluation panel").
			Text(map[bool]string{true: "▸", false: "▾"}[s.evalClosed]).
			OnClick(func(ctx app.Context, e app.Event) { s.evalClosed = !s.evalClosed }),
		app.Text(" Evaluate"),
	)}
	if s.evalClosed {
		// Collapsed, the panel keeps one line: which job the grid shows and how far it is.
		if lj != nil {
			body = append(body, app.Span().Class("muted").Text(fmt.Sprintf(" %s · %s", lj.info.State, progressText(lj.info))))
		}
		return app.Section().Class("eval-panel group collapsed").Attr("data-testid", "eval-panel").Body(body...)
	}
	switch s.modelsState {
	case modelsNone:
		body = append(body, app.P().Class("muted").Attr("data-testid", "eval-no-model").Body(
			app.Text("No model is loaded in this server. To evaluate, start it with one: "),
			app.Code().Text("bin/rdre serve --data DIR --model FILE.onnx"),
			app.Text(" (make run uses models/default/demo.onnx)."),
		))
	case modelsReady:
		body = append(body, app.Div().Class("filters").Body(
			app.Label().Body(
				app.Text("Model "),
				app.Select().Attr("data-testid", "model-select").OnChange(func(ctx app.Context, e app.Event) {
					s.modelSel = ctx.JSSrc().Get("value").String()
				}).Body(app.Range(s.models).Slice(func(i int) app.UI {
					m := s.models[i]
					label := m.Name
					if m.Device != "" {
						label += " · " + m.Device
					}
					return option(m.SHA256, label, s.modelSel)
				})),
			),
			app.Label().Body(
				app.Text("Masks "),
				app.Select().Attr("data-testid", "mask-select").Title("Which ground truth the metrics use").
					OnChange(func(ctx app.Context, e app.Event) { s.masksSel = ctx.JSSrc().Get("value").String() }).Body(
					option(protocol.MasksDataset, "dataset ground truth", s.masksSel),
					option(protocol.MasksWorkspace, "drawn in this workspace, else dataset", s.masksSel),
				),
			),
			app.If(d != nil && len(d.Categories) > 1, func() app.UI {
				return app.Label().Body(
					app.Text("Category "),
					app.Select().Attr("data-testid", "category-select").
						OnChange(func(ctx app.Context, e app.Event) { s.categorySel = ctx.JSSrc().Get("value").String() }).
						Body(app.Range(d.Categories).Slice(func(i int) app.UI { return option(d.Categories[i], d.Categories[i], s.categorySel) })),
				)
			}),
			app.Label().Title("White Gaussian noise added to the images before inference (robustness study); 0 = none").Body(
				app.Text("Noise σ "),
				app.Input().Type("number").Attr("min", "0").Attr("max", "1").Attr("step", "0.01").Placeholder("0").
					Value(s.noiseSel).Attr("data-testid", "noise-std").Style("width", "5em").
					OnChange(func(ctx app.Context, e app.Event) { s.noiseSel = ctx.JSSrc().Get("value").String() }),
			),
			app.Button().Class("primary").Attr("data-testid", "evaluate").Text("Evaluate").
				Title("Run the model over the test split and compute the metrics").
				Disabled(s.starting || busy || s.modelSel == "").
				OnClick(func(ctx app.Context, e app.Event) { s.startEvaluation(ctx) }),
			app.If(busy, func() app.UI {
				return app.Button().Attr("data-testid", "job-cancel").Text("Cancel").Disabled(s.cancelling == s.jobID).
					OnClick(func(ctx app.Context, e app.Event) { s.cancelEvaluation(ctx, s.jobID) })
			}),
		))
	default:
		body = append(body, app.P().Class("muted").Text("Looking for models…"))
	}
	if s.evalErr != "" {
		body = append(body, app.P().Class("error-text").Attr("data-testid", "eval-error").Text(s.evalErr))
	}
	if lj != nil {
		body = append(body, s.renderJob(lj))
	}
	return app.Section().Class("eval-panel group").Attr("data-testid", "eval-panel").Body(body...)
}

func (s *Studio) renderJob(lj *liveJob) app.UI {
	in := lj.info
	name := in.ModelName
	if name == "" {
		name = in.Model
	}
	state := in.State
	if state == "" {
		state = "loading"
	}
	total := max(in.Total, 1)
	return app.Div().Class("eval-job").Attr("data-job", in.ID).Body(
		app.P().Class("row").Body(
			app.Span().Class("badge").Attr("data-testid", "job-state").Text(state),
			app.Span().Class("muted").Text(fmt.Sprintf(" %s · %s split · %s masks%s", name, in.Split, in.Masks, noiseText(in.NoiseStd))),
		),
		app.Div().Class("row").Attr("data-testid", "job-progress").Attr("data-done", in.Done).Attr("data-total", in.Total).Body(
			app.Progress().Max(total).Value(in.Done).Style("flex", "1"),
			app.Span().Class("num").Text(progressText(in)),
		),
		app.If(in.State == protocol.JobFailed || in.Error != "", func() app.UI {
			return app.P().Class("error-text").Attr("data-testid", "job-error").Text("The evaluation failed: " + in.Error)
		}),
		renderWarnings("job-warnings", "about the evaluated files", in.Warnings),
		app.If(lj.running() && in.Total > 0 && in.Done >= in.Total, func() app.UI {
			// Every map is in, and the exact pixel metrics over all of them take a while on a large set:
			// without this line the panel looks stuck at "partial".
			return app.P().Class("computing").Attr("data-testid", "metrics-computing").Text("computing exact metrics…")
		}),
		app.If(lj.result != nil, func() app.UI { return s.renderMetrics(lj) }).Else(func() app.UI {
			if lj.running() {
				return app.P().Class("muted").Text("Metrics appear after the first images…")
			}
			return nil
		}),
		app.If(in.State == protocol.JobDone, func() app.UI { return s.renderReports(in.ID) }),
		app.If(in.State == protocol.JobDone, func() app.UI { return s.renderThresholds(lj) }),
	)
}

func noiseText(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(" · noise σ %g", v)
}

func (s *Studio) renderMetrics(lj *liveJob) app.UI {
	r := lj.result
	state := "partial"
	if lj.final {
		state = "final"
	}
	rows := metricRows(r)
	c := r.Counts
	return app.Table().Class("metrics").Attr("data-testid", "live-metrics").Attr("data-state", state).Body(
		app.THead().Body(app.Tr().Body(
			app.Th().Text("metric"),
			app.Th().Body(app.Span().Class("badge").Attr("data-testid", "metrics-state").Title("%s", stateHint(lj)).Text(state)),
			app.Th().Text("threshold"),
		)),
		app.TBody().Body(
			app.Range(rows).Slice(func(i int) app.UI {
				row := rows[i]
				val := app.Td().Class("num").Attr("data-testid", "metric-value").Attr("data-value", rawMetric(row.value)).Text(formatMetric(row.value))
				if row.value == nil {
					val = val.Title("%s", warningFor(r, row.key))
				}
				thr := app.Td().Class("num")
				if row.hasThr {
					thr = thr.Attr("data-testid", "metric-threshold").Attr("data-value", rawMetric(row.threshold)).Text(formatThreshold(row.threshold))
				}
				return app.Tr().Attr("data-metric", row.key).Body(app.Td().Text(row.label), val, thr)
			}),
			app.Tr().Class("muted").Body(app.Td().Attr("colspan", 3).Text(fmt.Sprintf("%d images (%d anomalous, %d normal), %d regions",
				c.Images, c.AnomalousImages, c.NormalImages, c.Regions))),
		),
	)
}

func stateHint(lj *liveJob) string {
	switch {
	case lj.final:
		return "exact: the final result of the finished job"
	case lj.result != nil && lj.result.Estimate:
		return "over the images finished so far; pixel metrics estimated from binned scores until the end"
	}
	return "over the images finished so far"
}

// renderReports links the finished job's reports and a comparison with another finished job.
func (s *Studio) renderReports(job string) app.UI {
	var others []protocol.JobInfo
	for _, j := range s.jobs {
		if j.ID != job && s.liveJobOf(j.ID).info.State == protocol.JobDone {
			others = append(others, j)
		}
	}
	links := []app.UI{
		app.Text("Report "),
		app.A().Class("button").Attr("data-testid", "report-html").Href(reportURL(job, "html", "", false)).
			Target("_blank").Rel("noopener").Text("HTML"),
	}
	for _, f := range reportFormats[1:] {
		links = append(links, app.A().Class("button").Attr("data-testid", "report-"+f).
			Href(reportURL(job, f, "", true)).Attr("download", "rdre-report-"+job+"."+f).Text(f))
	}
	if len(others) > 0 {
		links = append(links,
			app.Label().Body(
				app.Text(" compare with "),
				app.Select().Attr("data-testid", "compare-select").OnChange(func(ctx app.Context, e app.Event) {
					s.compareSel = selectValue(ctx)
				}).Body(
					option("", "—", s.compareSel),
					app.Range(others).Slice(func(i int) app.UI {
						j := others[i]
						return option(j.ID, fmt.Sprintf("%s · %s masks%s · %s", j.ModelName, j.Masks, noiseText(j.NoiseStd), j.Created), s.compareSel)
					}),
				),
			),
			app.If(s.compareSel != "", func() app.UI {
				// The job chosen to compare with is the baseline A, this job is B: Δ = B − A is what this
				// job gained over it (an improvement shows as a positive number).
				return app.A().Class("button").Attr("data-testid", "report-compare").
					Href(reportURL(s.compareSel, "html", job, false)).Target("_blank").Rel("noopener").Text("Comparison")
			}),
		)
	}
	return app.Div().Class("row reports").Attr("data-testid", "reports").Body(links...)
}

// defaultModel is the model a page offers first: the newest one trained on this dataset (a user who
// trained one wants to evaluate it, not the demo model), else the first in the list.
func defaultModel(models []protocol.ModelInfo, dataset string) string {
	best := ""
	newest := ""
	for _, m := range models {
		if _, ok := m.TrainedOn[dataset]; ok && m.Training >= newest {
			best, newest = m.SHA256, m.Training
		}
	}
	if best == "" && len(models) > 0 {
		best = models[0].SHA256
	}
	return best
}
