package ui

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// The Train panel of a dataset's grid page: options, a start button, the run's streamed progress with
// previews of the synthetic training samples, cancel and resume. It is a component of its own so that its
// state survives the page's re-renders, and it follows the training stream (train.progress, train.done,
// pushed to every client) on a websocket connection of its own, so it needs no hook in the page's.

// renderTrainPanel is the grid page's hook.
func (s *Studio) renderTrainPanel() app.UI {
	var cats []string
	if d := s.dataset(s.dsID); d != nil {
		cats = d.Categories
	}
	return &TrainPanel{Dataset: s.dsID, Categories: cats, studio: s}
}

var (
	trainClientOnce sync.Once
	trainClient     *Client
	trainMu         sync.Mutex
	trainPanelNow   *TrainPanel // the mounted panel, which receives the pushes
)

// trainWS returns the training stream's connection, dialled on first use. Only called in the browser.
func trainWS() *Client {
	trainClientOnce.Do(func() {
		loc := app.Window().Get("location")
		scheme := "ws:"
		if loc.Get("protocol").String() == "https:" {
			scheme = "wss:"
		}
		trainClient = NewClient(scheme + "//" + loc.Get("host").String() + "/ws")
		trainClient.OnPush(func(env protocol.Envelope) {
			if env.Type != protocol.TypeTrainProgress && env.Type != protocol.TypeTrainDone {
				return
			}
			trainMu.Lock()
			p := trainPanelNow
			trainMu.Unlock()
			if p != nil && p.mounted {
				p.ctx.Dispatch(func(ctx app.Context) { p.onPush(ctx, env) })
			}
		})
		trainClient.OnConnect(func(up bool) {
			trainMu.Lock()
			p := trainPanelNow
			trainMu.Unlock()
			if up && p != nil && p.mounted {
				// Pushes sent while the connection was down are lost: catch up.
				p.ctx.Dispatch(func(ctx app.Context) { p.load(ctx) })
			}
		})
		go trainClient.Run(context.Background())
	})
	return trainClient
}

func trainRequest(typ string, payload, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return trainWS().Request(ctx, typ, payload, reply)
}

// TrainPanel is the Train panel. Dataset and Categories come from the page; the rest is its own.
type TrainPanel struct {
	app.Compo
	Dataset    string
	Categories []string

	studio  *Studio
	ctx     app.Context
	mounted bool

	env       protocol.TrainEnv
	envLoaded bool
	runs      []protocol.TrainInfo // this dataset's runs, newest first
	runsDS    string
	mine      map[string]bool // runs started from this page: their evaluation is shown when they end
	logLine   string

	form     trainForm
	formSet  bool
	starting bool
	acting   string // run being cancelled or resumed
	err      string
}

// trainForm holds the option controls as typed.
type trainForm struct {
	preset, teacher, size, stepsStudent, stepsSeg, batch, device, threads, anomaly, category string
	realMasks, noFloor                                                                       bool
}

func formOf(o protocol.TrainOptions) trainForm {
	return trainForm{preset: o.Preset, teacher: o.Teacher, size: strconv.Itoa(o.Size), stepsStudent: strconv.Itoa(o.StepsStudent),
		stepsSeg: strconv.Itoa(o.StepsSeg), batch: strconv.Itoa(o.Batch), device: o.Device, threads: strconv.Itoa(o.Threads), anomaly: o.AnomalySource}
}

// OnMount starts following the training stream.
func (p *TrainPanel) OnMount(ctx app.Context) {
	p.ctx = ctx
	p.mounted = true
	if app.IsServer {
		return
	}
	trainMu.Lock()
	trainPanelNow = p
	trainMu.Unlock()
	trainWS()
	p.load(ctx)
}

// OnDismount stops the pushes to this panel.
func (p *TrainPanel) OnDismount() {
	p.mounted = false
	trainMu.Lock()
	if trainPanelNow == p {
		trainPanelNow = nil
	}
	trainMu.Unlock()
}

// OnUpdate reloads the runs when the page shows another dataset.
func (p *TrainPanel) OnUpdate(ctx app.Context) {
	if p.runsDS != p.Dataset {
		p.load(ctx)
	}
}

// load asks for the environment and this dataset's runs.
func (p *TrainPanel) load(ctx app.Context) {
	ds := p.Dataset
	if ds == "" || app.IsServer {
		return
	}
	ctx.Async(func() {
		var rep protocol.TrainListReply
		err := trainRequest(protocol.TypeTrainList, protocol.TrainListRequest{Dataset: ds}, &rep)
		p.ctx.Dispatch(func(ctx app.Context) {
			var se *ServerError
			switch {
			case err != nil && errors.As(err, &se) && se.Code == protocol.CodeUnknown:
				p.err = "this server cannot train (it was built without the training runner)"
				return
			case err != nil:
				p.err = fmt.Sprintf("listing training runs: %v", err)
				return
			}
			p.env, p.envLoaded = rep.Env, true
			p.runs, p.runsDS = rep.Runs, ds
			if !p.formSet {
				p.form = formOf(rep.Env.Defaults)
				p.formSet = true
			}
			if rep.Env.Checking {
				// Python is still being probed: ask again shortly.
				ctx.After(2*time.Second, func(ctx app.Context) { p.load(ctx) })
			}
		})
	})
}

func (p *TrainPanel) onPush(ctx app.Context, env protocol.Envelope) {
	var info protocol.TrainInfo
	switch env.Type {
	case protocol.TypeTrainProgress:
		var tp protocol.TrainProgress
		if err := decodeLoose(env.Payload, &tp); err != nil {
			p.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
		info = tp.Run
		if tp.Log != "" {
			// The trainer's own step lines carry a second, rougher ETA (its last steps only): the
			// progress line's is the one to read, so that part of the log line is left out.
			line, _, _ := strings.Cut(tp.Log, " eta ")
			p.logLine = line
		}
	case protocol.TypeTrainDone:
		if err := decodeLoose(env.Payload, &info); err != nil {
			p.err = fmt.Sprintf("unreadable %s push: %v", env.Type, err)
			return
		}
	}
	if info.Dataset != p.Dataset {
		return
	}
	p.upsert(info)
	if env.Type == protocol.TypeTrainDone && info.State == protocol.TrainDone {
		p.showResult(info)
	}
}

func (p *TrainPanel) upsert(info protocol.TrainInfo) {
	for i := range p.runs {
		if p.runs[i].ID == info.ID {
			p.runs[i] = info
			return
		}
	}
	p.runs = append([]protocol.TrainInfo{info}, p.runs...)
}

// showResult makes the evaluation panel offer the new model and, for a run started here, show its
// evaluation job (the grid's scores, the live metrics, the reports and the comparison with the others).
func (p *TrainPanel) showResult(info protocol.TrainInfo) {
	s := p.studio
	if s == nil || !s.mounted {
		return
	}
	mine := p.mine[info.ID]
	s.mctx.Dispatch(func(ctx app.Context) {
		s.modelsState = modelsUnknown
		s.loadModels(ctx)
		if info.Model != "" {
			s.modelSel = info.Model
		}
		s.jobsDS = ""
		s.loadJobs(ctx)
		if mine && info.Job != "" && s.view == viewGrid && s.dsID == info.Dataset {
			s.selectJob(info.Job)
			s.scoresJob = ""
			ctx.Navigate(s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine))
		}
	})
}

// current is the run the panel shows: a running one, else the newest.
func (p *TrainPanel) current() *protocol.TrainInfo {
	for i := range p.runs {
		if st := p.runs[i].State; st == protocol.TrainRunning || st == protocol.TrainQueued {
			return &p.runs[i]
		}
	}
	if len(p.runs) > 0 {
		return &p.runs[0]
	}
	return nil
}

func (p *TrainPanel) options() (protocol.TrainOptions, error) {
	f := p.form
	num := func(name, v string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s %q: want a whole number", name, v)
		}
		return n, nil
	}
	o := protocol.TrainOptions{Preset: f.preset, Teacher: f.teacher, Device: f.device, AnomalySource: f.anomaly, RealMasks: f.realMasks && f.preset != protocol.PresetPlainRD,
		NoFloor: f.noFloor}
	var err error
	if o.Size, err = num("size", f.size); err != nil {
		return o, err
	}
	if o.StepsStudent, err = num("student steps", f.stepsStudent); err != nil {
		return o, err
	}
	if o.StepsSeg, err = num("segmentation steps", f.stepsSeg); err != nil {
		return o, err
	}
	if o.Batch, err = num("batch", f.batch); err != nil {
		return o, err
	}
	if o.Threads, err = num("threads", f.threads); err != nil {
		return o, err
	}
	return o, nil
}

func (p *TrainPanel) start(ctx app.Context) {
	o, err := p.options()
	if err != nil {
		p.err = err.Error()
		return
	}
	req := protocol.TrainStartRequest{Dataset: p.Dataset, Options: o}
	if len(p.Categories) > 1 {
		req.Category = p.form.category
		if req.Category == "" {
			req.Category = p.Categories[0]
		}
	}
	p.starting, p.err, p.logLine = true, "", ""
	ctx.Async(func() {
		var info protocol.TrainInfo
		err := trainRequest(protocol.TypeTrainStart, req, &info)
		p.ctx.Dispatch(func(ctx app.Context) {
			p.starting = false
			if err != nil {
				p.err = fmt.Sprintf("starting the training: %v", err)
				return
			}
			if p.mine == nil {
				p.mine = map[string]bool{}
			}
			p.mine[info.ID] = true
			p.upsert(info)
		})
	})
}

func (p *TrainPanel) act(ctx app.Context, typ, run string) {
	p.acting, p.err = run, ""
	ctx.Async(func() {
		var info protocol.TrainInfo
		err := trainRequest(typ, protocol.TrainRef{Run: run}, &info)
		p.ctx.Dispatch(func(ctx app.Context) {
			p.acting = ""
			if err != nil {
				p.err = fmt.Sprintf("%s: %v", typ, err)
				return
			}
			if typ == protocol.TypeTrainResume {
				if p.mine == nil {
					p.mine = map[string]bool{}
				}
				p.mine[info.ID] = true
			}
			p.upsert(info)
		})
	})
}

// Render draws the panel.
func (p *TrainPanel) Render() app.UI {
	cur := p.current()
	busy := cur != nil && (cur.State == protocol.TrainRunning || cur.State == protocol.TrainQueued)
	body := []app.UI{app.H2().Text("Train a model")}
	switch {
	case !p.envLoaded && p.err == "":
		body = append(body, app.P().Class("muted").Text("Looking for the trainer…"))
	case p.envLoaded && p.env.Checking:
		body = append(body, app.P().Class("muted").Attr("data-testid", "train-env").Text("Checking Python and PyTorch…"))
	case p.envLoaded && !p.env.Ready:
		body = append(body, app.P().Class("error-text").Attr("data-testid", "train-env").Text(p.env.Problem))
	}
	if p.envLoaded {
		body = append(body, p.renderForm(busy, cur))
		if !p.env.CanEvaluate {
			body = append(body, app.P().Class("muted").Text("This server has no inference runtime: a trained model is exported, not registered or evaluated (run make ort)."))
		}
	}
	if p.err != "" {
		body = append(body, app.P().Class("error-text").Attr("data-testid", "train-error").Text(p.err))
	}
	if cur != nil {
		body = append(body, p.renderRun(*cur))
	}
	return app.Section().Class("eval-panel group train-panel").Attr("data-testid", "train-panel").Body(body...)
}

func (p *TrainPanel) renderForm(busy bool, cur *protocol.TrainInfo) app.UI {
	f := &p.form
	numInput := func(testid, title string, v *string, width string) app.HTMLInput {
		return app.Input().Type("number").Attr("min", "0").Attr("data-testid", testid).Title(title).Value(*v).Style("width", width).
			OnChange(func(ctx app.Context, e app.Event) { *v = ctx.JSSrc().Get("value").String() })
	}
	sel := func(testid string, v *string, opts ...app.UI) app.UI {
		return app.Select().Attr("data-testid", testid).OnChange(func(ctx app.Context, e app.Event) {
			*v = ctx.JSSrc().Get("value").String()
		}).Body(opts...)
	}
	var teachers []app.UI
	for _, t := range p.env.Teachers {
		teachers = append(teachers, app.Option().Value(t.Name).Selected(t.Name == f.teacher).Disabled(!t.Available).Title(t.Note).Text(t.Label))
	}
	var sources []app.UI
	for _, src := range p.env.AnomalySources {
		sources = append(sources, option(src.ID, src.Label, f.anomaly))
	}
	d, q, g := p.env.Defaults, p.env.Quick, p.env.GPUPreset
	controls := []app.UI{
		app.Label().Title("rdre: RD-RE as this tool trains it (no cross-stage fusion, the student's map; models/README.md); plain-rd: plain reverse distillation, the baseline it is measured against").Body(
			app.Text("Preset "), sel("train-preset", &f.preset, option(protocol.PresetRDRE, "RD-RE", f.preset), option(protocol.PresetPlainRD, "plain RD", f.preset))),
		app.Label().Body(app.Text("Teacher "), sel("train-teacher", &f.teacher, teachers...)),
		app.Label().Title("input resolution, a multiple of 32").Body(app.Text("Size "), numInput("train-size", "", &f.size, "5em")),
		app.Label().Title("steps of stage 1 (the student) and stage 2 (the segmentation head; RD-RE exports the student's map, so stage 2 does not change what the model finds: models/README.md)").Body(
			app.Text("Steps "), numInput("train-steps-student", "student", &f.stepsStudent, "6em"), app.Text(" + "),
			// Plain RD has no segmentation stage: the field would be ignored, so it is not offered.
			numInput("train-steps-seg", "segmentation", &f.stepsSeg, "6em").Disabled(f.preset == protocol.PresetPlainRD)),
		app.Label().Body(app.Text("Batch "), numInput("train-batch", "", &f.batch, "4em")),
		app.Label().Title("auto: CUDA when PyTorch sees a GPU, else the CPU").Body(app.Text("Device "), sel("train-device", &f.device,
			option("auto", "auto", f.device), option("cpu", "CPU", f.device), option("cuda", "CUDA", f.device))),
		app.Label().Title("PyTorch CPU threads").Body(app.Text("Threads "), numInput("train-threads", "", &f.threads, "4em")),
		app.Label().Title("where the synthetic anomalies' textures come from").Body(app.Text("Anomalies "), sel("train-anomaly", &f.anomaly, sources...)),
	}
	if len(p.Categories) > 1 {
		var cats []app.UI
		for _, c := range p.Categories {
			cats = append(cats, option(c, c, f.category))
		}
		controls = append(controls, app.Label().Body(app.Text("Category "), sel("train-category", &f.category, cats...)))
	}
	controls = append(controls,
		app.Label().Class("check").Title("Also train the segmentation stage on the defective images whose masks are drawn in this workspace, mixed with synthetic anomalies; evaluations of the model leave those images out").Body(
			// Plain RD has no segmentation stage for the masks to fine-tune.
			app.Input().Type("checkbox").Attr("data-testid", "train-real-masks").Checked(f.realMasks && f.preset != protocol.PresetPlainRD).
				Disabled(f.preset == protocol.PresetPlainRD).
				OnChange(func(ctx app.Context, e app.Event) { f.realMasks = ctx.JSSrc().Get("checked").Bool() }),
			app.Text(" fine-tune with the masks drawn here"),
		),
		app.Label().Class("check").Title("The floor: keep every fifth normal image aside, train plain RD (the baseline) beside RD-RE on the others, and test both on synthetic defects laid on the kept images. "+
			"If plain RD ranks those images better, the model uses plain RD's image score; otherwise it averages the two models' scores, each divided by its typical score on normal images (the combined score). "+
			"The heatmap comes from whichever model outlines the synthetic defects better. So the model you get can be plain RD, RD-RE or a mix of the two; the result line and the model card say which. "+
			"About a third more time; not with plain RD or fine-tuning").Body(
			app.Input().Type("checkbox").Attr("data-testid", "train-floor").Checked(!f.noFloor && f.preset != protocol.PresetPlainRD && !f.realMasks).
				Disabled(f.preset == protocol.PresetPlainRD || f.realMasks).
				OnChange(func(ctx app.Context, e app.Event) { f.noFloor = !ctx.JSSrc().Get("checked").Bool() }),
			app.Text(" compare with plain RD (the floor)"),
		),
		app.Button().Attr("data-testid", "train-defaults").
			Title(fmt.Sprintf("%d px, %d + %d steps of batch %d, %d threads: a useful model in about 15 minutes on 2 CPU cores for a category of about 200 images, and a third more with the floor's plain-RD baseline", d.Size, d.StepsStudent, d.StepsSeg, d.Batch, d.Threads)).
			Text("CPU defaults").OnClick(func(ctx app.Context, e app.Event) { p.setForm(d) }),
		app.Button().Attr("data-testid", "train-quick").
			Title(fmt.Sprintf("%d px, %d + %d steps of batch %d: about 5 minutes on 2 idle CPU cores (a third more with the floor), for busy cores or a first look", q.Size, q.StepsStudent, q.StepsSeg, q.Batch)).
			Text("Quick").OnClick(func(ctx app.Context, e app.Event) { p.setForm(q) }),
		app.Button().Attr("data-testid", "train-gpu").
			Title(fmt.Sprintf("the paper's schedule: %d px, %d + %d steps of batch %d on CUDA%s", g.Size, g.StepsStudent, g.StepsSeg, g.Batch, gpuNote(p.env))).
			Text("GPU preset").OnClick(func(ctx app.Context, e app.Event) { p.setForm(g) }),
		app.Button().Class("primary").Attr("data-testid", "train-start").Text("Train").
			Title("Train on this dataset's normal images, then export, calibrate, register and evaluate the model").
			Disabled(p.starting || busy || !p.env.Ready).
			OnClick(func(ctx app.Context, e app.Event) { p.start(ctx) }),
	)
	if busy {
		controls = append(controls, app.Button().Attr("data-testid", "train-cancel").Text("Cancel").
			Title("Stop after the current step; the checkpoint stays and the run can be resumed").
			Disabled(p.acting == cur.ID).OnClick(func(ctx app.Context, e app.Event) { p.act(ctx, protocol.TypeTrainCancel, cur.ID) }))
	} else if cur != nil && (cur.State == protocol.TrainCancelled || cur.State == protocol.TrainFailed) {
		controls = append(controls, app.Button().Attr("data-testid", "train-resume").Text("Resume").
			Title("Continue this run from its last checkpoint, with the settings it started with (the form above is for new runs)").Disabled(p.acting == cur.ID || !p.env.Ready).
			OnClick(func(ctx app.Context, e app.Event) { p.act(ctx, protocol.TypeTrainResume, cur.ID) }))
	}
	return app.Div().Class("filters").Body(controls...)
}

func gpuNote(env protocol.TrainEnv) string {
	if env.CUDA {
		return " (" + env.GPU + ")"
	}
	return "; PyTorch sees no GPU on this server"
}

func (p *TrainPanel) setForm(o protocol.TrainOptions) {
	cat, real, noFloor := p.form.category, p.form.realMasks, p.form.noFloor
	p.form = formOf(o)
	p.form.category, p.form.realMasks, p.form.noFloor = cat, real, noFloor
}

func (p *TrainPanel) renderRun(in protocol.TrainInfo) app.UI {
	stage := in.Stage
	stepText := stageText(in)
	total, step := max(in.Total, 1), min(in.Step, max(in.Total, 1))
	if in.State == protocol.TrainDone {
		step, stepText = total, doneText(in)
	}
	return app.Div().Class("eval-job").Attr("data-run", in.ID).Body(
		app.P().Class("row").Body(
			app.Span().Class("badge").Attr("data-testid", "train-state").Attr("data-run", in.ID).Text(in.State),
			app.Span().Class("muted").Text(fmt.Sprintf(" run %s · %s · %d normal images%s, %d held out for calibration%s · %d px, batch %d%s",
				in.ID, in.Options.Preset, in.Images, floorHeldText(in.FloorHeldOut), in.HeldOut, realText(in.Real), in.Options.Size, in.Options.Batch, deviceText(in))),
		),
		app.Div().Class("row").Attr("data-testid", "train-progress").Attr("data-stage", stage).Attr("data-step", in.Step).
			Attr("data-total", in.Total).Attr("data-state", in.State).Body(
			app.Progress().Max(total).Value(step).Style("flex", "1"),
			app.Span().Class("num").Text(stepText),
		),
		app.If(p.logLine != "" && (in.State == protocol.TrainRunning), func() app.UI {
			return app.P().Class("muted").Style("font-size", "11px").Attr("data-testid", "train-log").Text(p.logLine)
		}),
		app.If(in.State == protocol.TrainFailed && in.Error != "", func() app.UI {
			return app.P().Class("error-text").Attr("data-testid", "train-failure").Text("The training failed: " + in.Error)
		}),
		renderWarnings("train-warnings", "about this run", in.Warnings),
		app.If(in.Preview != nil, func() app.UI { return renderPreview(in.Preview) }),
		app.If(in.State == protocol.TrainDone, func() app.UI {
			msg := "Model exported to " + in.Dir + "/model.onnx with its MODEL_CARD.md"
			if in.ModelName != "" {
				msg = "Model registered as " + in.ModelName + "; card: " + in.Dir + "/MODEL_CARD.md"
			}
			if in.Job != "" {
				msg += ". Its evaluation on the test images is in the Evaluate panel (job " + in.Job + ")"
			}
			return app.P().Class("muted").Attr("data-testid", "train-result").Text(msg + thresholdsText(in.Thresholds))
		}),
		app.If(in.Floor != nil, func() app.UI {
			return app.P().Class("muted").Attr("data-testid", "train-floor-result").Text("Floor: " + in.Floor.Summary() + ".")
		}),
	)
}

// doneText sums up a finished run: steps per stage and the time they trained.
func doneText(in protocol.TrainInfo) string {
	t := fmt.Sprintf("trained: %d student steps", in.Steps[protocol.StageStudent])
	if n := in.Steps[protocol.StageSeg]; n > 0 {
		t += fmt.Sprintf(" + %d segmentation steps", n)
	}
	if n := in.Steps[protocol.StageBaseline]; n > 0 {
		t += fmt.Sprintf(", then %d plain-RD steps for the floor", n)
	}
	if sec := in.Elapsed[protocol.StageStudent] + in.Elapsed[protocol.StageSeg] + in.Elapsed[protocol.StageBaseline]; sec > 0 {
		t += " (" + durationText(sec) + " of training)"
	}
	return t
}

func floorHeldText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d more held out to compare with plain RD)", n)
}

func realText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d real defects", n)
}

func deviceText(in protocol.TrainInfo) string {
	if in.Device == "" {
		return " · device " + in.Options.Device
	}
	return " · " + in.Device
}

func stageText(in protocol.TrainInfo) string {
	switch in.Stage {
	case protocol.StageStudent, protocol.StageSeg, protocol.StageBaseline:
		name := "student"
		switch in.Stage {
		case protocol.StageSeg:
			name = "segmentation"
		case protocol.StageBaseline:
			name = "plain-RD baseline (the floor)"
		}
		if in.Total == 0 {
			return name + ": starting the trainer"
		}
		t := fmt.Sprintf("%s %d/%d", name, in.Step, in.Total)
		if in.Loss != 0 {
			t += fmt.Sprintf(" · loss %.4g", in.Loss)
		}
		if in.SecPerStep > 0 {
			t += fmt.Sprintf(" · %.2f s/step", in.SecPerStep)
		}
		if in.ETA >= 0 && in.State == protocol.TrainRunning {
			t += " · ETA " + durationText(in.ETA)
		}
		return t
	case protocol.StageFloor:
		return "comparing RD-RE with plain RD on the held-out images"
	case "":
		return ""
	}
	return in.Stage
}

func durationText(sec float64) string {
	d := time.Duration(math.Round(sec)) * time.Second
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

func thresholdsText(th map[string]float64) string {
	pix, okP := th["pixel_normal"]
	img, okI := th["image_normal"]
	if !okP || !okI {
		return "."
	}
	return fmt.Sprintf(". Thresholds from held-out normal images: pixel %.4g, image %.4g.", pix, img)
}

func renderPreview(pv *protocol.TrainPreview) app.UI {
	img := func(testid, src, caption string) app.UI {
		if src == "" {
			return nil
		}
		return app.Figure().Style("margin", "4px 0").Body(
			app.Img().Attr("data-testid", testid).Src(src).Alt(caption).
				Style("width", "100%").Style("max-width", "512px").Style("image-rendering", "pixelated").Style("display", "block"),
			app.FigCaption().Class("muted").Style("font-size", "11px").Text(caption),
		)
	}
	stage := "student"
	if pv.Stage == protocol.StageSeg {
		stage = "segmentation"
	}
	return app.Details().Attr("data-testid", "train-preview").Attr("data-step", pv.Step).Attr("open", true).Body(
		app.Summary().Text(fmt.Sprintf("What the model learns from (%s step %d)", stage, pv.Step)),
		img("train-preview-image", pv.Image, "synthetic training samples: normal images with a synthetic anomaly"),
		img("train-preview-mask", pv.Mask, "their anomaly masks (what the segmentation head must find)"),
		img("train-preview-prediction", pv.Prediction, "the model's current map of them"),
	)
}
