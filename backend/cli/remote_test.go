//go:build !js

package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset/datasettest"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/oip"
	"github.com/rdre-studio/studio/backend/server"
)

// serveModel runs what `rdre serve --model FILE` runs (server.New, attachJobs, serveOIP) on a real
// listener and returns the model's protocol URL.
func serveModel(t *testing.T, model, token string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Config{Workspace: filepath.Join(t.TempDir(), "ws.db"), Token: token, Logger: log, AllowedHosts: server.HostsFor(ln.Addr(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := attachJobs(srv, jobOptions{Models: []string{model}, Device: "cpu", Threads: 1, ORTLib: testenv.ORTLibrary(t), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	serveOIP(srv, runner, log)
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		runner.Close()
		srv.Close()
	})
	return "http://" + ln.Addr().String() + "/v2/models/" + oip.ModelName(model) + "?token=" + token
}

// `rdre infer --model-url` against `rdre serve --model` writes the same maps and scores, byte for byte, as
// `rdre infer --model` of the same file.
func TestInfer_RemoteEqualsLocal(t *testing.T) {
	model := testenv.SmallModel(t)
	url := serveModel(t, model, "tok")
	fx, err := datasettest.Write(t.TempDir(), "mvtec")
	if err != nil {
		t.Fatal(err)
	}
	lib := testenv.ORTLibrary(t)
	outs := [2]string{t.TempDir(), t.TempDir()}
	for i, src := range [][]string{{"--model", model}, {"--model-url", url}} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"infer", "--data", fx.Root, "--out", outs[i], "--device", "cpu", "--threads", "1", "--batch", "3", "--ort-lib", lib, "--quiet"}, src...)
		if code := Main(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", src, code, stderr.String())
		}
		if i == 1 && (!strings.Contains(stderr.String(), "on remote (Open Inference Protocol") || strings.Contains(stderr.String(), "tok")) {
			t.Errorf("remote infer says: %s", stderr.String())
		}
	}
	n := 0
	err = filepath.Walk(outs[0], func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(outs[0], p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(outs[1], rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs (%v)", rel, err)
		}
		n++
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("%d files compared: %v", n, err)
	}
}

func TestInfer_ModelFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{"infer", "--data", "d", "--out", "o"},
		{"infer", "--data", "d", "--out", "o", "--model", "m.onnx", "--model-url", "http://h/v2/models/m"},
		{"bench", "--model", "m.onnx", "--model-url", "http://h/v2/models/m"},
		{"export-model", "--model", "m.onnx"},
	} {
		if code := Main(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	stderr.Reset()
	fx, err := datasettest.Write(t.TempDir(), "mvtec")
	if err != nil {
		t.Fatal(err)
	}
	if code := Main([]string{"infer", "--data", fx.Root, "--out", t.TempDir(), "--model-url", "http://127.0.0.1:1/models/m"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "/v2/models/NAME") {
		t.Errorf("bad URL: %s", stderr.String())
	}
}

// `rdre serve --model-url` registers the remote model for jobs; `rdre bench --model-url` times it;
// `rdre export-model` writes the repository and the sidecar.
func TestServeBenchExport_Remote(t *testing.T) {
	model := testenv.SmallModel(t)
	url := serveModel(t, model, "")

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Config{Workspace: filepath.Join(t.TempDir(), "client.db"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rf := &remoteFlags{urls: listFlag{url}, inflight: 2}
	runner, err := attachJobs(srv, jobOptions{Remote: rf, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ms := runner.Models()
	runner.Close()
	if len(ms) != 1 || ms[0].Device != "remote" || !strings.HasPrefix(ms[0].Name, "model") || ms[0].Metadata["sha256"] != "" || ms[0].InputSize != 64 {
		t.Fatalf("models: %+v", ms)
	}

	var stdout, stderr bytes.Buffer
	if code := Main([]string{"bench", "--model-url", url, "--batch", "2", "--seconds", "0.2", "--image-size", "32", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr.String())
	}
	var res struct {
		ORT     benchResult `json:"onnxruntime"`
		PyTorch benchResult `json:"pytorch"`
		Model   inference.Info
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.ORT.BestIPS <= 0 || res.Model.Device != "remote" || res.PyTorch.Status != "skipped" {
		t.Fatalf("bench: %v %s", err, stdout.String())
	}

	dir := t.TempDir()
	m := filepath.Join(dir, "small.onnx")
	raw, _ := os.ReadFile(model)
	os.WriteFile(m, raw, 0o644)
	stdout.Reset()
	if code := Main([]string{"export-model", "--model", m, "--triton", filepath.Join(dir, "repo"), "--sidecar", "--max-batch", "4", "--ort-lib", testenv.ORTLibrary(t)}, &stdout, &stderr); code != 0 {
		t.Fatalf("export-model: exit %d: %s", code, stderr.String())
	}
	for _, p := range []string{"small.onnx.rdre.json", "repo/small/config.pbtxt", "repo/small/1/model.onnx", "repo/small/1/model.onnx.rdre.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("export-model did not write %s", p)
		}
	}
	if !strings.Contains(stdout.String(), "tritonserver --model-repository=") {
		t.Errorf("export-model output: %s", stdout.String())
	}
}
