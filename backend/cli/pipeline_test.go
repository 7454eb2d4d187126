//go:build !js

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/protocol"
)

// The three ways to get metrics (an evaluation job in the server, `rdre infer` + `rdre eval` on disk)
// must give the same numbers: users compare them.
func TestInfer_EvalEqualsJob(t *testing.T) {
	if err := inference.Init(testenv.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	model := testenv.SmallModel(t)
	demo := testenv.Demo(t)
	lib, _ := inference.Initialized()

	srv, err := server.New(server.Config{Data: []string{demo}, Workspace: filepath.Join(t.TempDir(), "ws.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := jobs.New(srv, jobs.Options{Device: "cpu"})
	defer r.Close()
	mi, err := r.AddModel(model)
	if err != nil {
		t.Fatal(err)
	}
	info, err := r.Start(protocol.JobStartRequest{Dataset: srv.DatasetIDs()[0], Model: mi.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := r.Wait(ctx, info.ID)
	if err != nil || st.Job.State != protocol.JobDone {
		t.Fatalf("job: %v %+v", err, st.Job)
	}
	var job map[string]any
	if err := json.Unmarshal(st.Result, &job); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"infer", "--model", model, "--data", demo, "--out", out, "--device", "cpu", "--ort-lib", lib}, &stdout, &stderr); code != 0 {
		t.Fatalf("infer: exit %d: %s", code, stderr.String())
	}
	stdout.Reset()
	if code := Main([]string{"eval", "--maps", out, "--gt", demo, "--scores", filepath.Join(out, "scores.json")}, &stdout, &stderr); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, stderr.String())
	}
	var eval map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &eval); err != nil {
		t.Fatalf("eval output: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"image_auroc", "image_ap", "image_f1_max", "image_f1_max_threshold", "pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_f1_max_threshold", "pixel_aupro"} {
		a, aok := job[k].(float64)
		b, bok := eval[k].(float64)
		if !aok || !bok || a != b {
			t.Errorf("%s: job %v, infer+eval %v", k, job[k], eval[k])
		}
	}
}
