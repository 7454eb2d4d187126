//go:build !js

package training

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/onnxmeta"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// env is one server with a job runner and a training runner on a workspace file, as serve wires them.
type env struct {
	srv  *server.Server
	jobs *jobs.Runner
	tr   *Runner
	hs   *httptest.Server
	dsID string
}

func startEnv(t *testing.T, ws, data string) *env {
	t.Helper()
	if err := inference.Init(testenv.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Data: []string{data}, Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	jr := jobs.New(srv, jobs.Options{Device: "cpu", Threads: 1, Batch: 4})
	tr := New(srv, Options{Python: testenv.Python, Repo: testenv.RepoRoot(t), StopGrace: 60 * time.Second})
	if err := tr.AttachJobs(jr); err != nil {
		t.Fatal(err)
	}
	if err := jr.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := tr.ResumeAll(); err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, jobs: jr, tr: tr, hs: httptest.NewServer(srv.Handler()), dsID: srv.DatasetIDs()[0]}
}

// stop shuts down as serve does: the trainer first (a running run stays resumable), then jobs, server.
func (e *env) stop() {
	e.hs.Close()
	e.tr.Close()
	e.jobs.Close()
	e.srv.Close()
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func (e *env) dial(t *testing.T) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.hs.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &client{t: t, ws: ws}
	c.next(time.Minute) // hello
	return c
}

func (c *client) send(id, typ string, payload any) {
	c.t.Helper()
	env, _ := protocol.New(id, typ, payload)
	if err := c.ws.WriteJSON(env); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) next(d time.Duration) protocol.Envelope {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(d))
	var env protocol.Envelope
	if err := c.ws.ReadJSON(&env); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return env
}

// until reads frames until cond holds for one; error frames fail the test.
func (c *client) until(what string, d time.Duration, cond func(protocol.Envelope) bool) protocol.Envelope {
	c.t.Helper()
	return c.read(what, d, true, cond)
}

func (c *client) read(what string, d time.Duration, failOnError bool, cond func(protocol.Envelope) bool) protocol.Envelope {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		env := c.next(left)
		if failOnError && env.Type == protocol.TypeError {
			c.t.Fatalf("waiting for %s: error frame %s", what, env.Payload)
		}
		if cond(env) {
			return env
		}
	}
}

func decode[T any](t *testing.T, env protocol.Envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(env.Payload, &v); err != nil {
		t.Fatalf("decode %s: %v", env.Type, err)
	}
	return v
}

func progressOf(t *testing.T, env protocol.Envelope) (protocol.TrainInfo, bool) {
	if env.Type != protocol.TypeTrainProgress {
		return protocol.TrainInfo{}, false
	}
	return decode[protocol.TrainProgress](t, env).Run, true
}

// A real (short, tiny, random-teacher) training started over the websocket: progress and previews stream
// to every client, cancel keeps the checkpoint, resume continues from it, a server restart in the middle
// of training resumes it from its checkpoint, and the finished model is exported, calibrated on held-out
// images, registered (workspace and job runner) and evaluated on the test images.
func TestTraining_WebsocketCancelResumeRestartRegisterEvaluate(t *testing.T) {
	testenv.NeedTorch(t)
	ws := filepath.Join(t.TempDir(), "ws.db")
	demo := testenv.Demo(t)
	e := startEnv(t, ws, demo)
	a, b := e.dial(t), e.dial(t)

	a.send("l", protocol.TypeTrainList, protocol.TrainListRequest{Dataset: e.dsID})
	list := decode[protocol.TrainListReply](t, a.until("train list", time.Minute, func(env protocol.Envelope) bool { return env.Type == protocol.TypeTrains }))
	if len(list.Runs) != 0 || len(list.Env.Teachers) == 0 || list.Env.Defaults.Size != cpuSize || list.Env.GPUPreset.Batch != 32 {
		t.Fatalf("train.list: %+v", list)
	}

	opt := protocol.TrainOptions{Size: 64, StepsStudent: 40, StepsSeg: 4, Batch: 2, Device: "cpu", Threads: 1, RandomTeacher: true,
		LogEvery: 2, CkptEvery: 1000, PreviewEvery: 4}
	a.send("s", protocol.TypeTrainStart, protocol.TrainStartRequest{Dataset: e.dsID, Options: opt})
	started := decode[protocol.TrainInfo](t, a.until("train reply", time.Minute, func(env protocol.Envelope) bool { return env.Type == protocol.TypeTrain && env.ID == "s" }))
	id := started.ID
	if started.Images != 54 || started.HeldOut != 6 || started.Options.Size != 64 || started.Category != "tiles" {
		t.Fatalf("started: %+v", started)
	}
	// A second start while one trains is refused.
	a.send("s2", protocol.TypeTrainStart, protocol.TrainStartRequest{Dataset: e.dsID, Options: opt})
	busy := a.read("busy error", time.Minute, false, func(env protocol.Envelope) bool { return env.ID == "s2" || env.Type == protocol.TypeError })
	if busy.Type != protocol.TypeError || !strings.Contains(string(busy.Payload), "in progress") {
		t.Fatalf("second start: %s %s", busy.Type, busy.Payload)
	}

	// The other tab sees the same stream: student steps with losses, seconds per step, ETA and a preview.
	var withPreview protocol.TrainInfo
	b.until("student progress with a preview", 3*time.Minute, func(env protocol.Envelope) bool {
		in, ok := progressOf(t, env)
		if ok && in.ID == id && in.Stage == protocol.StageStudent && in.Step >= 4 && in.Preview != nil {
			withPreview = in
			return true
		}
		return false
	})
	if withPreview.Loss <= 0 || withPreview.SecPerStep <= 0 || withPreview.ETA <= 0 || withPreview.Total != 40 || withPreview.Device != "cpu" {
		t.Fatalf("progress: %+v", withPreview)
	}
	for _, u := range []string{withPreview.Preview.Image, withPreview.Preview.Mask, withPreview.Preview.Prediction} {
		res, err := http.Get(e.hs.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(string(body), "\x89PNG") {
			t.Fatalf("preview %s: %d %s", u, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	// The preview route serves that run's previews only.
	for _, q := range []url.Values{
		{"run": {id}, "file": {"../checkpoint.pt"}},
		{"run": {id}, "file": {"student-000004-image.png/../../checkpoint.pt"}},
		{"run": {"../" + id}, "file": {"student-000004-image.png"}},
		{"run": {"nope"}, "file": {"student-000004-image.png"}},
	} {
		res, err := http.Get(e.hs.URL + "/api/train/preview?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatalf("preview %v served", q)
		}
	}

	// Cancel: the trainer saves its checkpoint at the step it is on; every client hears train.done.
	a.send("c", protocol.TypeTrainCancel, protocol.TrainRef{Run: id})
	cancelled := decode[protocol.TrainInfo](t, a.until("cancel reply", 2*time.Minute, func(env protocol.Envelope) bool { return env.ID == "c" }))
	if cancelled.State != protocol.TrainCancelled {
		t.Fatalf("after cancel: %+v", cancelled)
	}
	done := b.until("train.done", time.Minute, func(env protocol.Envelope) bool { return env.Type == protocol.TypeTrainDone })
	if decode[protocol.TrainInfo](t, done).State != protocol.TrainCancelled {
		t.Fatalf("train.done: %s", done.Payload)
	}
	stoppedAt := cancelled.Steps["student"] // what the trainer saved when it stopped (train.log checks it below)
	if stoppedAt < 4 || stoppedAt >= 40 {
		t.Fatalf("checkpoint after cancel at student step %d", stoppedAt)
	}

	// Resume (as the panel's button does): it continues from the checkpoint.
	a.send("r", protocol.TypeTrainResume, protocol.TrainRef{Run: id})
	a.until("resume reply", time.Minute, func(env protocol.Envelope) bool { return env.ID == "r" })
	b.until("progress past the checkpoint", 3*time.Minute, func(env protocol.Envelope) bool {
		in, ok := progressOf(t, env)
		return ok && in.Stage == protocol.StageStudent && in.Step >= stoppedAt+2 && in.Step < 40
	})

	// Restart the server in the middle of training: the run is left "running" with a fresh checkpoint...
	e.stop()
	rec := storedRecord(t, ws, id)
	if rec.Info.State != protocol.TrainRunning {
		t.Fatalf("after shutdown the run is %s, want running", rec.Info.State)
	}
	restartAt := rec.Info.Steps["student"]
	if restartAt <= stoppedAt || restartAt >= 40 {
		t.Fatalf("checkpoint at shutdown: step %d, after cancel %d", restartAt, stoppedAt)
	}
	// ...and the next server resumes it from there and finishes.
	e = startEnv(t, ws, demo)
	defer e.stop()
	c := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	final, err := e.tr.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != protocol.TrainDone || final.Resumes != 2 || final.Steps["student"] != 40 || final.Steps["seg"] != 4 {
		t.Fatalf("final: %+v", final)
	}
	if final.Thresholds[KeyPixelNormal] == 0 || final.Thresholds[KeyImageNormal] == 0 || final.Model == "" || final.Job == "" {
		t.Fatalf("not calibrated, registered or evaluated: %+v", final)
	}
	// The floor: 10 of the 54 staged images held out, plain RD trained on the other 44 for 40 + 4 steps, and
	// the choice recorded in the run, the card and the model's metadata.
	f := final.Floor
	if f == nil || !f.Checked || f.HeldOut != 10 || final.FloorHeldOut != 10 || final.Images != 44 || final.Steps["baseline"] != 44 || final.Elapsed["baseline"] <= 0 ||
		f.Recipe == nil || f.Baseline == nil || (f.Score != "recipe" && f.Score != "baseline") || (f.Map != "recipe" && f.Map != "baseline") {
		t.Fatalf("floor: %+v in %+v", f, final)
	}
	if md := modelMetadata(t, filepath.Join(final.Dir, "model.onnx"))["rdre.floor"]; !strings.Contains(md, `"held_out": 10`) || !strings.Contains(md, `"score": "`+f.Score+`"`) {
		t.Fatalf("rdre.floor metadata: %q", md)
	}
	// The log shows both resumes from the checkpoints that cancel and shutdown wrote.
	log, _ := os.ReadFile(filepath.Join(final.Dir, "train.log"))
	for _, at := range []int{stoppedAt, restartAt} {
		if !strings.Contains(string(log), "at student step "+strconv.Itoa(at)+",") {
			t.Fatalf("train.log has no resume at step %d:\n%s", at, log)
		}
	}

	// Registered: in the job runner (models.list) and in the workspace, with the held-out thresholds.
	c.send("m", protocol.TypeModelsList, nil)
	models := decode[protocol.ModelsReply](t, c.until("models", time.Minute, func(env protocol.Envelope) bool { return env.Type == protocol.TypeModels }))
	var mi *protocol.ModelInfo
	for i := range models.Models {
		if models.Models[i].SHA256 == final.Model {
			mi = &models.Models[i]
		}
	}
	if mi == nil || mi.Training != id || mi.Thresholds[KeyPixelNormal] != final.Thresholds[KeyPixelNormal] || mi.InputSize != 64 || mi.Category != "tiles" {
		t.Fatalf("registered model: %+v (want sha %s)", mi, final.Model)
	}
	// Evaluated on the labelled test images.
	st, err := e.jobs.Wait(ctx, final.Job)
	if err != nil || st.Job.State != protocol.JobDone || st.Job.Total != 40 || len(st.Result) == 0 {
		t.Fatalf("evaluation: %v %+v", err, st.Job)
	}
	card, err := os.ReadFile(filepath.Join(final.Dir, "card.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cd Card
	if err := json.Unmarshal(card, &cd); err != nil {
		t.Fatal(err)
	}
	if cd.SHA256 != final.Model || len(cd.DataFingerprint) != 64 || cd.Job != final.Job || cd.TrainImages != 54 || cd.Device != "cpu" || cd.Elapsed["student"] <= 0 ||
		cd.Floor == nil || cd.Floor.HeldOut != 10 {
		t.Fatalf("card: %+v", cd)
	}
	md, _ := os.ReadFile(filepath.Join(final.Dir, "MODEL_CARD.md"))
	if !strings.Contains(string(md), "the floor held out 10 of them, so both models trained on 44") || !strings.Contains(string(md), f.Summary()) {
		t.Fatalf("MODEL_CARD.md says nothing of the floor:\n%s", md)
	}

	// A third server start offers the trained model again, with its thresholds.
	e.stop()
	e = startEnv(t, ws, demo)
	found := false
	for _, m := range e.jobs.Models() {
		if m.SHA256 == final.Model && m.Thresholds[KeyImageNormal] == final.Thresholds[KeyImageNormal] {
			found = true
		}
	}
	if !found {
		t.Fatalf("after restart the trained model is not offered: %+v", e.jobs.Models())
	}
	runs, err := e.tr.List(e.dsID)
	if err != nil || len(runs) != 1 || runs[0].State != protocol.TrainDone {
		t.Fatalf("runs after restart: %v %+v", err, runs)
	}
}

func storedRecord(t *testing.T, ws, id string) record {
	t.Helper()
	srv, err := server.New(server.Config{Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var rec record
	if err := srv.Store().Training(id, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// Fine-tuning with the masks drawn in the workspace: the drawn defects (one on a defect image, one drawn
// on a good test image) join the segmentation stage through models.finetune, the model's evaluations leave
// them out, and a cleared mask does not count.
func TestTraining_RealMasksFineTuneAndLeaveThemOut(t *testing.T) {
	testenv.NeedTorch(t)
	ws := filepath.Join(t.TempDir(), "ws.db")
	e := startEnv(t, ws, testenv.Demo(t))
	defer e.stop()
	var drawn []string
	ds, _ := e.srv.Dataset(e.dsID)
	var defect, good, cleared string
	for _, im := range ds.Images() {
		switch {
		case im.Split == protocol.SplitTest && im.Kind != protocol.KindGood && defect == "":
			defect = im.ID
		case im.Split == protocol.SplitTest && im.Kind != protocol.KindGood && cleared == "":
			cleared = im.ID
		case im.Split == protocol.SplitTest && im.Kind == protocol.KindGood && good == "":
			good = im.ID
		}
	}
	for _, id := range []string{defect, good, cleared} {
		im, _ := ds.Image(id)
		m, err := mask.New(im.Width, im.Height)
		if err != nil {
			t.Fatal(err)
		}
		if id != cleared {
			for y := 10; y < 30; y++ {
				for x := 10; x < 40; x++ {
					m.Pix[y*m.W+x] = 1
				}
			}
		}
		if _, err := e.srv.Store().SaveMask(e.dsID, id, m); err != nil {
			t.Fatal(err)
		}
	}
	drawn = []string{defect, good}

	info, err := e.tr.Start(protocol.TrainStartRequest{Dataset: e.dsID, Options: protocol.TrainOptions{Size: 32, StepsStudent: 2, StepsSeg: 4,
		Batch: 2, Device: "cpu", Threads: 1, RandomTeacher: true, LogEvery: 2, RealMasks: true}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Real != 2 {
		t.Fatalf("real images %d, want the 2 drawn defects: %+v", info.Real, info)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	final, err := e.tr.Wait(ctx, info.ID)
	if err != nil || final.State != protocol.TrainDone {
		t.Fatalf("run: %v %+v", err, final)
	}
	rec := map[string]any{}
	raw, err := os.ReadFile(filepath.Join(final.Dir, "real_images.json")) // written by models.finetune
	if err != nil || json.Unmarshal(raw, &rec) != nil || len(rec["images"].([]any)) != 2 {
		t.Fatalf("models.finetune did not record the real images: %v %s", err, raw)
	}
	for _, m := range e.jobs.Models() {
		if m.SHA256 == final.Model && strings.Join(m.TrainedOn[e.dsID], ",") != strings.Join(drawn, ",") {
			t.Fatalf("trained on %v, want %v", m.TrainedOn, drawn)
		}
	}
	st, err := e.jobs.Wait(ctx, final.Job)
	if err != nil || st.Job.State != protocol.JobDone || st.Job.Total != 38 || strings.Join(st.Job.Excluded, ",") != strings.Join(drawn, ",") {
		t.Fatalf("evaluation: %v %+v", err, st.Job)
	}
	// Without any drawn defect, fine-tuning is refused with the reason.
	for _, id := range drawn {
		im, _ := ds.Image(id)
		m, _ := mask.New(im.Width, im.Height)
		if _, err := e.srv.Store().SaveMask(e.dsID, id, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.tr.Start(protocol.TrainStartRequest{Dataset: e.dsID, Options: protocol.TrainOptions{RealMasks: true}}); err == nil || !strings.Contains(err.Error(), "no defective image") {
		t.Fatalf("fine-tuning without masks: %v", err)
	}
}

func modelMetadata(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md, err := onnxmeta.Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	return md
}
