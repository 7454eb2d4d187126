//go:build !js

package oip_test

import (
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/oip"
)

// flaky is a graph that fails (err) or answers NaN, counting its runs.
type flaky struct {
	S    int
	err  error
	runs atomic.Int64
}

func (f *flaky) Info() inference.Info { return inference.Info{InputSize: f.S} }

func (f *flaky) RunTensor(input []float32, n int) (maps, rdMaps, scores []float32, err error) {
	f.runs.Add(1)
	if f.err != nil {
		return nil, nil, nil, f.err
	}
	maps, rdMaps, scores = make([]float32, n*f.S*f.S), make([]float32, n*f.S*f.S), make([]float32, n)
	scores[0] = float32(math.NaN())
	return maps, rdMaps, scores, nil
}

func TestRemote_FailureClasses(t *testing.T) {
	initORT(t)
	local, err := inference.Open(testenv.SmallModel(t), inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	md := oip.Metadata("m", local.Info(), 8, "cpu")
	imgs := demoImages(t, 2)
	opt := oip.Options{Batch: 2, Cooldown: 20 * time.Millisecond, MaxCooldown: 100 * time.Millisecond, GiveUp: time.Second}

	// A server error (500) is retried twice, and the endpoint stays in rotation.
	broken := &flaky{S: 64, err: errors.New("onnxruntime: out of memory")}
	rm, err := oip.Open([]string{fakeServer(t, md, nil, broken) + "/v2/models/m"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rm.Predict(imgs)
	if err == nil || !strings.Contains(err.Error(), "out of memory") || !strings.Contains(err.Error(), "failed 3 times") || broken.runs.Load() != 3 {
		t.Fatalf("500: %v after %d runs", err, broken.runs.Load())
	}
	if s := rm.Endpoints()[0]; s.State != "up" || s.Failures != 3 {
		t.Fatalf("endpoint after 500s: %+v", s)
	}

	// NaN in the outputs is the model's fault: no retry, the local error.
	nan := &flaky{S: 64}
	rm, err = oip.Open([]string{fakeServer(t, md, nil, nan) + "/v2/models/m"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = rm.Predict(imgs); !errors.Is(err, inference.ErrNonFinite) || nan.runs.Load() != 1 {
		t.Fatalf("NaN: %v after %d runs", err, nan.runs.Load())
	}

	// An endpoint gone for good: the run fails once GiveUp has passed, saying why.
	ep := startEndpoint(t, "127.0.0.1:0", "")
	rm, err = oip.Open([]string{ep.url()}, opt)
	if err != nil {
		t.Fatal(err)
	}
	ep.kill()
	start := time.Now()
	_, err = rm.Predict(imgs)
	if err == nil || !strings.Contains(err.Error(), "no endpoint answered for 1s") || time.Since(start) > 20*time.Second {
		t.Fatalf("gone: %v after %s", err, time.Since(start))
	}
	rm.Close()
	if _, err := rm.Predict(imgs); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("closed: %v", err)
	}
}
