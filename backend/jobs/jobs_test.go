//go:build !js

package jobs

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdre-studio/studio/backend/dataset/datasettest"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/mask"
	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

type env struct {
	srv    *server.Server
	runner *Runner
	hs     *httptest.Server
	model  protocol.ModelInfo
	dsID   string
}

// start opens a server and a runner on workspace ws (a real bbolt file) over the demo dataset.
func start(t *testing.T, ws string) *env {
	t.Helper()
	return startOn(t, ws, testenv.Demo(t))
}

// startOn is start over the dataset at root.
func startOn(t *testing.T, ws, root string) *env {
	t.Helper()
	if err := inference.Init(testenv.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	modelPath := testenv.SmallModel(t)
	srv, err := server.New(server.Config{Data: []string{root}, Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	r := New(srv, Options{Device: "cpu", Threads: 1, Batch: 4})
	m, err := r.AddModel(modelPath)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	e := &env{srv: srv, runner: r, hs: httptest.NewServer(srv.Handler()), model: m, dsID: srv.DatasetIDs()[0]}
	return e
}

func (e *env) stop() {
	e.hs.Close()
	e.runner.Close()
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
	c.next() // hello
	return c
}

func (c *client) send(id, typ string, payload any) {
	c.t.Helper()
	env, _ := protocol.New(id, typ, payload)
	if err := c.ws.WriteJSON(env); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) next() protocol.Envelope {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
	var env protocol.Envelope
	if err := c.ws.ReadJSON(&env); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return env
}

// until reads frames until one of type typ (for job) arrives, returning every frame read.
func (c *client) until(typ string) []protocol.Envelope {
	c.t.Helper()
	var seen []protocol.Envelope
	for {
		env := c.next()
		seen = append(seen, env)
		if env.Type == protocol.TypeError {
			c.t.Fatalf("error frame: %s", env.Payload)
		}
		if env.Type == typ {
			return seen
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

func TestRunner_Websocket_EndToEnd(t *testing.T) {
	e := start(t, filepath.Join(t.TempDir(), "ws.db"))
	defer e.stop()
	a, b := e.dial(t), e.dial(t)

	a.send("m", protocol.TypeModelsList, nil)
	models := decode[protocol.ModelsReply](t, a.until(protocol.TypeModels)[0])
	if len(models.Models) != 1 || models.Models[0].SHA256 != e.model.SHA256 || models.Models[0].InputSize != 64 {
		t.Fatalf("models: %+v", models)
	}

	a.send("j", protocol.TypeJobStart, protocol.JobStartRequest{Dataset: e.dsID, Model: e.model.SHA256})
	framesA := a.until(protocol.TypeJobDone)
	framesB := b.until(protocol.TypeJobDone)

	var started protocol.JobInfo
	var streamed []protocol.ImageScore
	for _, f := range framesA {
		switch f.Type {
		case protocol.TypeJob:
			started = decode[protocol.JobInfo](t, f)
		case protocol.TypeJobProgress:
			streamed = append(streamed, decode[protocol.JobProgress](t, f).Scores...)
		}
	}
	if started.ID == "" || started.Total != 40 {
		t.Fatalf("job reply: %+v", started)
	}
	done := decode[protocol.JobState](t, framesA[len(framesA)-1])
	if done.Job.State != protocol.JobDone || done.Job.Done != 40 || len(done.Scores) != 40 || len(streamed) != 40 {
		t.Fatalf("done: state %s, %d/%d, %d scores, %d streamed", done.Job.State, done.Job.Done, done.Job.Total, len(done.Scores), len(streamed))
	}
	// The second client saw the same progress stream and the same result.
	var streamedB int
	for _, f := range framesB {
		if f.Type == protocol.TypeJobProgress {
			streamedB += len(decode[protocol.JobProgress](t, f).Scores)
		}
	}
	doneB := decode[protocol.JobState](t, framesB[len(framesB)-1])
	if streamedB != 40 || string(doneB.Result) != string(done.Result) {
		t.Fatalf("second client: %d streamed, same result %v", streamedB, string(doneB.Result) == string(done.Result))
	}

	// The streamed final result equals a fresh exact computation over the cached maps: the cache keeps the
	// model's output losslessly, so a resumed job or a report gets the very same numbers.
	var res sm.Result
	if err := json.Unmarshal(done.Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.Partial || res.ImageAUROC == nil || res.PixelAUPRO == nil || res.Counts.Images != 40 {
		t.Fatalf("result: %+v", res)
	}
	ds, _ := e.srv.Dataset(e.dsID)
	var imgs []metrics.Image
	for _, s := range done.Scores {
		im, _ := ds.Image(s.Image)
		m, w, h, err := e.srv.Store().Map(started.ID, s.Image)
		if err != nil {
			t.Fatalf("cached map of %s: %v", s.Image, err)
		}
		gt, _, _, _, err := ds.GroundTruth(s.Image)
		if err != nil {
			t.Fatal(err)
		}
		score := s.Score
		imgs = append(imgs, metrics.Image{Key: MetricKey(im), Kind: im.Kind, Label: s.Label, Score: &score, W: w, H: h, Map: m, Mask: gt})
	}
	again, err := metrics.Compute(imgs, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]*float64{
		"image AUROC": {res.ImageAUROC, again.ImageAUROC},
		"pixel AUROC": {res.PixelAUROC, again.PixelAUROC},
		"pixel AP":    {res.PixelAP, again.PixelAP},
		"pixel AUPRO": {res.PixelAUPRO, again.PixelAUPRO},
	} {
		if *pair[0] != *pair[1] {
			t.Errorf("%s: streamed %v, recomputed from the cache %v", name, *pair[0], *pair[1])
		}
	}

	// The heatmap route serves the cached map with its range.
	resp, err := http.Get(e.hs.URL + "/api/heatmap?job=" + started.ID + "&id=" + done.Scores[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("X-Map-Max") == "" {
		t.Fatalf("heatmap: HTTP %d %v", resp.StatusCode, resp.Header)
	}
}

func TestRunner_Start_BadInput(t *testing.T) {
	e := start(t, filepath.Join(t.TempDir(), "ws.db"))
	defer e.stop()
	for name, req := range map[string]protocol.JobStartRequest{
		"no model":    {Dataset: e.dsID, Model: "nope"},
		"no dataset":  {Dataset: "nope", Model: e.model.SHA256},
		"bad masks":   {Dataset: e.dsID, Model: e.model.SHA256, Masks: "mine"},
		"bad noise":   {Dataset: e.dsID, Model: e.model.SHA256, NoiseStd: -1},
		"empty split": {Dataset: e.dsID, Model: e.model.SHA256, Split: "validation"},
	} {
		if _, err := e.runner.Start(req); err == nil {
			t.Errorf("%s: started", name)
		}
	}
}

func TestRunner_Cancel_ThenRestartResumes(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws.db")
	e := start(t, ws)
	info, err := e.runner.Start(protocol.JobStartRequest{Dataset: e.dsID, Model: e.model.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	// Let a batch or two finish, then stop the server as a shutdown would.
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := e.runner.State(info.ID)
		if st.Job.Done >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.stop()

	var rec record
	e2 := start(t, ws)
	defer e2.stop()
	if err := e2.srv.Store().Job(info.ID, &rec); err != nil {
		t.Fatal(err)
	}
	cachedBefore := len(rec.Scores)
	if rec.Info.State != protocol.JobRunning || cachedBefore == 0 || cachedBefore >= 40 {
		t.Fatalf("after shutdown: state %s with %d scores, want running with some but not all", rec.Info.State, cachedBefore)
	}
	if err := e2.runner.Resume(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := e2.runner.Wait(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Job.State != protocol.JobDone || len(st.Scores) != 40 {
		t.Fatalf("resumed: %s with %d scores", st.Job.State, len(st.Scores))
	}
	// The images scored before the restart kept their scores: they were not recomputed.
	for i := 0; i < cachedBefore; i++ {
		if st.Scores[i] != rec.Scores[i] {
			t.Fatalf("score %d changed across the restart: %+v -> %+v", i, rec.Scores[i], st.Scores[i])
		}
	}

	// An explicit cancel ends a job as cancelled.
	info2, err := e2.runner.Start(protocol.JobStartRequest{Dataset: e2.dsID, Model: e2.model.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2.runner.Cancel(info2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != protocol.JobCancelled && got.State != protocol.JobDone {
		t.Fatalf("cancelled job state %s", got.State)
	}
}

func TestRunner_Start_WorkspaceMasks(t *testing.T) {
	e := start(t, filepath.Join(t.TempDir(), "ws.db"))
	defer e.stop()
	ds, _ := e.srv.Dataset(e.dsID)
	var good, defect protocol.ImageInfo
	for _, im := range ds.Images() {
		if im.Split != protocol.SplitTest {
			continue
		}
		if im.Kind == protocol.KindGood && good.ID == "" {
			good = im
		}
		if im.Kind != protocol.KindGood && defect.ID == "" {
			defect = im
		}
	}
	st := e.srv.Store()
	cls, err := st.Classes(e.dsID)
	if err != nil || len(cls) == 0 {
		t.Fatalf("classes: %v %v", cls, err)
	}
	drawn, _ := mask.New(good.Width, good.Height)
	for i := 0; i < 100; i++ {
		drawn.Pix[i] = uint8(cls[0].Index)
	}
	if _, err := st.SaveMask(e.dsID, good.ID, drawn); err != nil {
		t.Fatal(err)
	}
	cleared, _ := mask.New(defect.Width, defect.Height)
	if _, err := st.SaveMask(e.dsID, defect.ID, cleared); err != nil {
		t.Fatal(err)
	}
	info, err := e.runner.Start(protocol.JobStartRequest{Dataset: e.dsID, Model: e.model.SHA256, Masks: protocol.MasksWorkspace})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := e.runner.Wait(ctx, info.ID)
	if err != nil || res.Job.State != protocol.JobDone {
		t.Fatalf("job: %v %+v", err, res.Job)
	}
	if len(res.Job.MaskVersions) != 2 || res.Job.MaskVersions[good.ID] != 1 || res.Job.MaskVersions[defect.ID] != 1 {
		t.Fatalf("mask versions recorded: %v", res.Job.MaskVersions)
	}
	for _, s := range res.Scores {
		switch s.Image {
		case good.ID:
			if s.Label != 1 || s.Kind != cls[0].Name {
				t.Errorf("drawn-on good image: %+v", s)
			}
		case defect.ID:
			if s.Label != 0 || s.Kind != protocol.KindGood {
				t.Errorf("cleared defect image: %+v", s)
			}
		}
	}
}

// TestRunner_Job_UnreadableImageSkipped: a truncated PNG (its header reads, its pixels do not) in the test
// split is skipped and reported by name in the job and its result; the other images are evaluated.
func TestRunner_Job_UnreadableImageSkipped(t *testing.T) {
	fx, err := datasettest.Write(t.TempDir(), "mvtec")
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(fx.Root, "test/good/000.png"))
	if err != nil {
		t.Fatal(err)
	}
	// Cut inside the image data: the IHDR chunk (bytes 8..33) stays whole, so only decoding fails.
	broken := "test/good/005.png"
	if err := os.WriteFile(filepath.Join(fx.Root, broken), good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	e := startOn(t, filepath.Join(t.TempDir(), "ws.db"), fx.Root)
	defer e.stop()
	c := e.dial(t)
	c.send("j", protocol.TypeJobStart, protocol.JobStartRequest{Dataset: e.dsID, Model: e.model.SHA256})
	frames := c.until(protocol.TypeJobDone)
	done := decode[protocol.JobState](t, frames[len(frames)-1])
	tests := len(fx.Split(protocol.SplitTest))
	if done.Job.State != protocol.JobDone || done.Job.Skipped != 1 || done.Job.Done != tests || done.Job.Total != tests+1 {
		t.Fatalf("job: state %s error %q, done %d skipped %d of %d; want done with %d evaluated and 1 skipped",
			done.Job.State, done.Job.Error, done.Job.Done, done.Job.Skipped, done.Job.Total, tests)
	}
	if !strings.Contains(strings.Join(done.Job.Warnings, "\n"), broken) {
		t.Errorf("job warnings %q do not name %s", done.Job.Warnings, broken)
	}
	var res sm.Result
	if err := json.Unmarshal(done.Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.Counts.Images != tests || !strings.Contains(strings.Join(res.Warnings, "\n"), broken) {
		t.Errorf("result: %d images, warnings %q", res.Counts.Images, res.Warnings)
	}
	// The image without a mask in a defect folder is a warning too.
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "test/scratch/002.png") {
		t.Errorf("result warnings %q do not name the defect image without a mask", res.Warnings)
	}
}
