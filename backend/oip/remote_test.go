//go:build !js

package oip_test

import (
	"context"
	"image"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/dataset/datasettest"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/oip"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/protocol"
)

// endpoint is `rdre serve --model SMALL.onnx` in-process: server.New, the job runner that opens the model,
// the protocol routes registered through server.Handle (behind the token and Host checks), and a real
// HTTP listener. gate, when set, sees every request first.
type endpoint struct {
	t      *testing.T
	addr   string
	token  string
	srv    *server.Server
	runner *jobs.Runner
	hs     *http.Server
	served chan struct{}
	infers atomic.Int64
	// block, when not nil, makes the infer request numbered blockAt wait until it is closed (by kill):
	// the test then kills the endpoint with a request in flight.
	blockAt  int64
	block    chan struct{}
	reached  chan struct{}
	killOnce sync.Once
}

func initORT(t testing.TB) {
	t.Helper()
	if err := inference.Init(testenv.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
}

// startEndpoint listens on addr ("127.0.0.1:0" for any port).
func startEndpoint(t *testing.T, addr, token string) *endpoint {
	t.Helper()
	initORT(t)
	model := testenv.SmallModel(t)
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // a port just closed may take a moment to be free again
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Workspace: filepath.Join(t.TempDir(), "ws.db"), Token: token, AllowedHosts: server.HostsFor(ln.Addr(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	r := jobs.New(srv, jobs.Options{Device: "cpu", Threads: 1})
	if _, err := r.AddModel(model); err != nil {
		t.Fatal(err)
	}
	var runners []oip.Runner
	for _, m := range r.LocalModels() {
		runners = append(runners, m)
	}
	oip.NewServer(oip.ServerOptions{}, runners...).Register(srv.Handle)
	e := &endpoint{t: t, addr: ln.Addr().String(), token: token, srv: srv, runner: r, served: make(chan struct{}), reached: make(chan struct{})}
	h := srv.Handler()
	e.hs = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/infer") {
			n := e.infers.Add(1)
			if e.block != nil && n == e.blockAt {
				close(e.reached)
				<-e.block
				return
			}
		}
		h.ServeHTTP(w, req)
	})}
	go func() {
		defer close(e.served)
		e.hs.Serve(ln)
	}()
	t.Cleanup(e.kill)
	return e
}

// kill stops the endpoint abruptly: listener and connections closed, the model closed.
func (e *endpoint) kill() {
	e.killOnce.Do(func() {
		e.hs.Close()
		if e.block != nil {
			close(e.block)
		}
		<-e.served
		e.runner.Close()
		e.srv.Close()
	})
}

func (e *endpoint) url() string {
	u := "http://" + e.addr + "/v2/models/model"
	if e.token != "" {
		u += "?token=" + e.token
	}
	return u
}

// evaluation is the result of a job: every score and map, by image.
type evaluation struct {
	state  protocol.JobState
	scores map[string]float64
	maps   map[string][]float32
}

// evaluate runs a job of the test split of root with model (a file, or a remote model) on a fresh
// client-side server, and waits for its end. during, when set, runs once the job has started.
func evaluate(t *testing.T, root string, model any, batch int, during func(r *jobs.Runner, id string)) evaluation {
	t.Helper()
	srv, err := server.New(server.Config{Data: []string{root}, Workspace: filepath.Join(t.TempDir(), "client.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := jobs.New(srv, jobs.Options{Device: "cpu", Threads: 1, Batch: batch})
	defer r.Close()
	var mi protocol.ModelInfo
	switch m := model.(type) {
	case string:
		mi, err = r.AddModel(m)
	case inference.Predictor:
		mi, err = r.AddPredictor(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := r.Start(protocol.JobStartRequest{Dataset: srv.DatasetIDs()[0], Model: mi.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(r, info.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st, err := r.Wait(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Job.State != protocol.JobDone {
		t.Fatalf("job %s: %s", st.Job.State, st.Job.Error)
	}
	ev := evaluation{state: st, scores: map[string]float64{}, maps: map[string][]float32{}}
	for _, s := range st.Scores {
		ev.scores[s.Image] = s.Score
		m, _, _, err := srv.Store().Map(info.ID, s.Image)
		if err != nil {
			t.Fatal(err)
		}
		ev.maps[s.Image] = m
	}
	return ev
}

// sameEvaluation checks scores and maps bit for bit, and the metrics.
func sameEvaluation(t *testing.T, local, remote evaluation) {
	t.Helper()
	if len(local.scores) == 0 || len(local.scores) != len(remote.scores) {
		t.Fatalf("%d local scores, %d remote", len(local.scores), len(remote.scores))
	}
	for id, s := range local.scores {
		r, ok := remote.scores[id]
		if !ok || math.Float64bits(r) != math.Float64bits(s) {
			t.Errorf("%s: score local %v, remote %v", id, s, r)
		}
		lm, rm := local.maps[id], remote.maps[id]
		if len(lm) == 0 || len(lm) != len(rm) {
			t.Fatalf("%s: map of %d values locally, %d remotely", id, len(lm), len(rm))
		}
		for i := range lm {
			if math.Float32bits(lm[i]) != math.Float32bits(rm[i]) {
				t.Fatalf("%s: map value %d: local %v, remote %v", id, i, lm[i], rm[i])
			}
		}
	}
	if string(local.state.Result) != string(remote.state.Result) {
		t.Errorf("metrics differ:\nlocal  %s\nremote %s", local.state.Result, remote.state.Result)
	}
}

func fastRetries() oip.Options {
	return oip.Options{Batch: 2, Timeout: 30 * time.Second, GiveUp: 90 * time.Second, Cooldown: 50 * time.Millisecond, MaxCooldown: 400 * time.Millisecond}
}

// A client evaluates a generated dataset through a real server; maps and scores equal the local run's bit
// for bit (and so do the metrics).
func TestRemote_JobEqualsLocal(t *testing.T) {
	ep := startEndpoint(t, "127.0.0.1:0", "s3cret")
	fx, err := datasettest.Write(t.TempDir(), "mvtec")
	if err != nil {
		t.Fatal(err)
	}
	local := evaluate(t, fx.Root, testenv.SmallModel(t), 2, nil)
	rm, err := oip.Open([]string{ep.url()}, fastRetries())
	if err != nil {
		t.Fatal(err)
	}
	in := rm.Info()
	if in.SHA256 != local.state.Job.Model || in.Device != "remote" || in.InputSize != 64 || !strings.Contains(in.DeviceReason, "server device cpu") {
		t.Fatalf("remote info: %+v", in)
	}
	if strings.Contains(in.Path, "s3cret") || strings.Contains(in.DeviceReason, "s3cret") {
		t.Fatalf("the token shows in %q / %q", in.Path, in.DeviceReason)
	}
	remote := evaluate(t, fx.Root, rm, 2, nil)
	sameEvaluation(t, local, remote)
	if n := ep.infers.Load(); n < 4 {
		t.Fatalf("%d infer requests for %d images in batches of 2", n, len(remote.scores))
	}
}

// Predict through the protocol equals Predict of the same file here, on every layout's images (sizes,
// grey, alpha, JPEG), in batches of 3.
func TestRemote_PredictEqualsLocal(t *testing.T) {
	ep := startEndpoint(t, "127.0.0.1:0", "")
	local, err := inference.Open(testenv.SmallModel(t), inference.Options{Device: "cpu", Threads: 1, Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	opt := fastRetries()
	opt.Batch = 3
	rm, err := oip.Open([]string{ep.url()}, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	var imgs []image.Image
	for _, layout := range datasettest.Layouts() {
		fx, err := datasettest.Write(t.TempDir(), layout)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := dataset.Open(fx.Root)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range ds.Images() {
			img, err := ds.Decode(im.ID)
			if err == nil {
				imgs = append(imgs, img)
			}
		}
		ds.Close()
	}
	want, err := local.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rm.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d predictions, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.W != g.W || w.H != g.H || math.Float64bits(w.Score) != math.Float64bits(g.Score) {
			t.Fatalf("image %d: %dx%d %v vs %dx%d %v", i, w.W, w.H, w.Score, g.W, g.H, g.Score)
		}
		for k, p := range [][2][]float32{{w.Map, g.Map}, {w.RawRD, g.RawRD}, {w.Raw, g.Raw}} {
			for j := range p[0] {
				if math.Float32bits(p[0][j]) != math.Float32bits(p[1][j]) {
					t.Fatalf("image %d, output %d, value %d: %v vs %v", i, k, j, p[0][j], p[1][j])
				}
			}
		}
	}
	t.Logf("%d images of %d layouts equal bit for bit, %d requests", len(imgs), len(datasettest.Layouts()), ep.infers.Load())
}

// The endpoint is killed with a request in flight and restarted on the same address; the job waits for
// it, completes, and its results equal the local run's.
func TestRemote_EndpointRestartMidJob(t *testing.T) {
	demo := testenv.Demo(t)
	local := evaluate(t, demo, testenv.SmallModel(t), 2, nil)

	ep := startEndpoint(t, "127.0.0.1:0", "")
	ep.block, ep.blockAt = make(chan struct{}), 5
	rm, err := oip.Open([]string{ep.url()}, fastRetries())
	if err != nil {
		t.Fatal(err)
	}
	var restarted *endpoint
	remote := evaluate(t, demo, rm, 2, func(r *jobs.Runner, id string) {
		select {
		case <-ep.reached:
		case <-time.After(2 * time.Minute):
			t.Fatal("the job never reached the fifth request")
		}
		ep.kill()
		st, _ := r.State(id)
		if st.Job.Done >= st.Job.Total {
			t.Fatalf("the job finished before the kill: %+v", st.Job)
		}
		time.Sleep(700 * time.Millisecond) // down for longer than the first pauses
		if s := rm.Endpoints()[0]; s.State == "up" || s.Failures == 0 {
			t.Errorf("killed endpoint: %+v", s)
		}
		restarted = startEndpoint(t, ep.addr, "")
		t.Logf("killed at %d/%d images, restarted", st.Job.Done, st.Job.Total)
	})
	sameEvaluation(t, local, remote)
	if restarted.infers.Load() == 0 {
		t.Fatal("the restarted endpoint served nothing")
	}
	if s := rm.Endpoints()[0]; s.State != "up" {
		t.Fatalf("endpoint after restart: %+v", s)
	}
}

// Two endpoints of the same model share the work; one dies for good mid-job, is taken out of rotation,
// and the other finishes the job with the same results.
func TestRemote_TwoEndpointsOneDies(t *testing.T) {
	demo := testenv.Demo(t)
	local := evaluate(t, demo, testenv.SmallModel(t), 2, nil)

	a := startEndpoint(t, "127.0.0.1:0", "")
	b := startEndpoint(t, "127.0.0.1:0", "")
	a.block, a.blockAt = make(chan struct{}), 4
	rm, err := oip.Open([]string{a.url(), b.url()}, fastRetries())
	if err != nil {
		t.Fatal(err)
	}
	if got := rm.Info().Batch; got != 2*2*2 {
		t.Fatalf("Info().Batch %d, want request batch x in flight x endpoints = 8", got)
	}
	remote := evaluate(t, demo, rm, 2, func(r *jobs.Runner, id string) {
		<-a.reached
		a.kill()
	})
	sameEvaluation(t, local, remote)
	st := rm.Endpoints()
	if st[0].State == "up" || st[0].Failures == 0 || st[1].State != "up" || st[1].Requests == 0 {
		t.Fatalf("endpoints: %+v", st)
	}
	if a.infers.Load() < 3 || b.infers.Load() < 3 {
		t.Fatalf("requests: a %d, b %d: not balanced", a.infers.Load(), b.infers.Load())
	}
}
