//go:build unix

package jobs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/protocol"
)

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkJob_Evaluate runs a whole evaluation job (decode, pre-process, model, map cache, metrics) over
// the test split of the dataset named by RDRE_BENCH_DATA (e.g. ../shared/data/mvtec/bottle) with the
// model RDRE_BENCH_MODEL (default models/default/demo.onnx), each time in a fresh workspace so that no
// map comes from the cache. It reports CPU seconds per job besides the wall time. `make bench-image-path`
// runs it.
func BenchmarkJob_Evaluate(b *testing.B) {
	root := os.Getenv("RDRE_BENCH_DATA")
	if root == "" {
		b.Skip("set RDRE_BENCH_DATA to a dataset folder")
	}
	model := os.Getenv("RDRE_BENCH_MODEL")
	if model == "" {
		model = filepath.Join(testenv.RepoRoot(b), "models", "default", "demo.onnx")
	}
	if err := inference.Init(testenv.ORTLibrary(b)); err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	images := 0
	for b.Loop() {
		srv, err := server.New(server.Config{Data: []string{root}, Workspace: filepath.Join(b.TempDir(), "ws.db")})
		if err != nil {
			b.Fatal(err)
		}
		r := New(srv, Options{Device: "cpu", Threads: 1, Batch: inference.DefaultBatch})
		m, err := r.AddModel(model)
		if err != nil {
			b.Fatal(err)
		}
		c0 := processCPU()
		info, err := r.Start(protocol.JobStartRequest{Dataset: srv.DatasetIDs()[0], Model: m.SHA256})
		if err != nil {
			b.Fatal(err)
		}
		st, err := r.Wait(context.Background(), info.ID)
		if err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - c0
		if st.Job.State != protocol.JobDone {
			b.Fatalf("job ended %s: %s", st.Job.State, st.Job.Error)
		}
		images = st.Job.Done
		r.Close()
		srv.Close()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(images), "images/op")
}
