//go:build !js

package oip_test

import (
	"bytes"
	"encoding/json"
	"image"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/oip"
)

// fakeServer answers like Triton would for a model with metadata md: GET .../v2/models/NAME returns md,
// GET .../config returns cfg (404 when nil), and POST .../infer runs run (when not nil), answering score
// as [N, 1] when md declares it so (Triton's dims [1] with reshape []). It returns the base URL; batches
// records the batch of every request.
func fakeServer(t *testing.T, md oip.ModelMetadata, cfg any, run oip.Runner, batches ...*[]int) string {
	t.Helper()
	var mu sync.Mutex
	prefix := "/v2/models/" + md.Name
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply := func(code int, v any) {
			raw, _ := json.Marshal(v)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			w.Write(raw)
		}
		r.URL.Path = strings.Replace(r.URL.Path, "/versions/1", "", 1)
		switch {
		case r.Method == "GET" && r.URL.Path == prefix:
			reply(200, md)
		case r.Method == "GET" && r.URL.Path == prefix+"/config" && cfg != nil:
			reply(200, cfg)
		case r.Method == "POST" && r.URL.Path == prefix+"/infer" && run != nil:
			body := new(bytes.Buffer)
			body.ReadFrom(r.Body)
			hlen, _ := oip.HeaderLength(r.Header)
			req, err := oip.DecodeInferRequest(body.Bytes(), hlen)
			if err != nil {
				reply(400, oip.ErrorResponse{Error: err.Error()})
				return
			}
			in, _ := req.Inputs[0].Float32s()
			n := int(req.Inputs[0].Shape[0])
			S := int64(req.Inputs[0].Shape[2])
			mu.Lock()
			for _, b := range batches {
				*b = append(*b, n)
			}
			mu.Unlock()
			maps, rds, scores, err := run.RunTensor(in, n)
			if err != nil {
				reply(500, oip.ErrorResponse{Error: err.Error()})
				return
			}
			scoreShape := []int64{int64(n)}
			if len(md.Outputs[1].Shape) == 2 {
				scoreShape = append(scoreShape, 1)
			}
			resp := &oip.InferResponse{ModelName: md.Name, ModelVersion: "1", ID: req.ID, Outputs: []oip.Tensor{
				oip.FP32Tensor("anomaly_map", []int64{int64(n), 1, S, S}, maps),
				oip.FP32Tensor("score", scoreShape, scores),
				oip.FP32Tensor("rd_map", []int64{int64(n), 1, S, S}, rds),
			}}
			out, hl, _ := oip.EncodeInferResponse(resp)
			w.Header().Set(oip.HeaderContentLength, strconv.Itoa(hl))
			w.Write(out)
		default:
			reply(404, oip.ErrorResponse{Error: "not found"})
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

var paramRE = regexp.MustCompile(`parameters \{\n  key: ("(?:[^"\\]|\\.)*")\n  value: \{ string_value: ("(?:[^"\\]|\\.)*") \}\n\}`)

// tritonConfigJSON is what Triton's GET .../config returns for our config.pbtxt (the parts the client
// reads), computed from the file's text.
func tritonConfigJSON(t *testing.T, pbtxt string) map[string]any {
	t.Helper()
	params := map[string]any{}
	for _, m := range paramRE.FindAllStringSubmatch(pbtxt, -1) {
		k, err1 := strconv.Unquote(m[1])
		v, err2 := strconv.Unquote(m[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("parameter %s %s: %v %v", m[1], m[2], err1, err2)
		}
		params[k] = map[string]string{"string_value": v}
	}
	mb := regexp.MustCompile(`(?m)^max_batch_size: (\d+)$`).FindStringSubmatch(pbtxt)
	if mb == nil {
		t.Fatal("no max_batch_size")
	}
	n, _ := strconv.Atoi(mb[1])
	return map[string]any{"name": "x", "platform": "onnxruntime_onnx", "max_batch_size": n, "parameters": params}
}

// The Triton repository: layout, config.pbtxt and sidecar; then a Triton-like endpoint serving it (metadata
// without parameters, score as [-1, 1], the pre-processing metadata in the model configuration, batches of
// at most max_batch_size) gives the local maps bit for bit.
func TestTriton_RepositoryAndClient(t *testing.T) {
	initORT(t)
	path := testenv.SmallModel(t)
	local, err := inference.Open(path, inference.Options{Device: "cpu", Threads: 1, Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	info := local.Info()
	dir := t.TempDir()
	mdir, err := oip.WriteTritonRepository(dir, path, info, oip.TritonOptions{Name: "rdre-small", MaxBatch: 4, Kind: "gpu", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)
	copied, err := os.ReadFile(filepath.Join(mdir, "1", "model.onnx"))
	if err != nil || !bytes.Equal(orig, copied) {
		t.Fatalf("model.onnx copy: %v", err)
	}
	cfgRaw, err := os.ReadFile(filepath.Join(mdir, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(cfgRaw)
	for _, want := range []string{
		`name: "rdre-small"`, `platform: "onnxruntime_onnx"`, "max_batch_size: 4",
		"name: \"image\"\n    data_type: TYPE_FP32\n    dims: [ 3, 64, 64 ]",
		"name: \"anomaly_map\"\n    data_type: TYPE_FP32\n    dims: [ 1, 64, 64 ]",
		"name: \"score\"\n    data_type: TYPE_FP32\n    dims: [ 1 ]\n    reshape: { shape: [ ] }",
		"name: \"rd_map\"\n    data_type: TYPE_FP32\n    dims: [ 1, 64, 64 ]",
		"dynamic_batching {\n  max_queue_delay_microseconds: 0\n}",
		"instance_group [\n  {\n    count: 2\n    kind: KIND_GPU\n  }\n]",
		"key: \"rdre.input_size\"\n  value: { string_value: \"64\" }",
		"key: \"sha256\"\n  value: { string_value: \"" + info.SHA256 + "\" }",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config.pbtxt lacks %q:\n%s", want, cfg)
		}
	}
	sc, err := oip.ReadSidecar(filepath.Join(mdir, "1", "model.onnx.rdre.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "rdre-small" || sc.Parameters["sha256"] != info.SHA256 || sc.Parameters["rdre.mean"] != info.Metadata["rdre.mean"] || sc.Parameters["max_batch_size"] != "4" {
		t.Fatalf("sidecar: %+v", sc)
	}

	// What Triton reports for this repository.
	tritonMD := oip.ModelMetadata{Name: "rdre-small", Versions: []string{"1"}, Platform: "onnxruntime_onnx",
		Inputs: []oip.TensorMetadata{{Name: "image", Datatype: "FP32", Shape: []int64{-1, 3, 64, 64}}},
		Outputs: []oip.TensorMetadata{
			{Name: "anomaly_map", Datatype: "FP32", Shape: []int64{-1, 1, 64, 64}},
			{Name: "score", Datatype: "FP32", Shape: []int64{-1, 1}},
			{Name: "rd_map", Datatype: "FP32", Shape: []int64{-1, 1, 64, 64}},
		}}
	var batches []int
	base := fakeServer(t, tritonMD, tritonConfigJSON(t, cfg), local, &batches)
	rm, err := oip.Open([]string{base + "/v2/models/rdre-small/versions/1"}, oip.Options{Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	if rm.RequestBatch() != 4 || rm.Info().SHA256 != info.SHA256 || !strings.Contains(rm.Info().DeviceReason, "model configuration") {
		t.Fatalf("batch %d, info %+v", rm.RequestBatch(), rm.Info())
	}
	imgs := demoImages(t, 10)
	want, err := local.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rm.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	samePredictions(t, want, got)
	for _, b := range batches {
		if b > 4 {
			t.Fatalf("batches %v exceed max_batch_size 4", batches)
		}
	}

	// Without a model configuration endpoint the metadata comes from the sidecar, and only from there.
	base = fakeServer(t, tritonMD, nil, local)
	if _, err := oip.Open([]string{base + "/v2/models/rdre-small"}, oip.Options{}); err == nil || !strings.Contains(err.Error(), "--model-meta") {
		t.Fatalf("no metadata anywhere: %v", err)
	}
	rm2, err := oip.Open([]string{base + "/v2/models/rdre-small"}, oip.Options{Batch: 4, Sidecars: []string{filepath.Join(mdir, "1", "model.onnx.rdre.json")}})
	if err != nil {
		t.Fatal(err)
	}
	defer rm2.Close()
	got, err = rm2.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	samePredictions(t, want, got)
	if rm2.Info().SHA256 != info.SHA256 || !strings.Contains(rm2.Info().DeviceReason, "sidecar") {
		t.Fatalf("info from the sidecar: %+v", rm2.Info())
	}
}

func demoImages(t *testing.T, n int) []image.Image {
	t.Helper()
	ds, err := dataset.Open(testenv.Demo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var imgs []image.Image
	for _, im := range ds.Images() {
		if im.Split != "test" {
			continue
		}
		img, err := ds.Decode(im.ID)
		if err != nil {
			t.Fatal(err)
		}
		if imgs = append(imgs, img); len(imgs) == n {
			break
		}
	}
	return imgs
}

func samePredictions(t *testing.T, want, got []inference.Prediction) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d predictions, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Float64bits(want[i].Score) != math.Float64bits(got[i].Score) {
			t.Fatalf("image %d: score %v, want %v", i, got[i].Score, want[i].Score)
		}
		for _, p := range [][2][]float32{{want[i].Map, got[i].Map}, {want[i].RawRD, got[i].RawRD}} {
			if len(p[0]) != len(p[1]) {
				t.Fatalf("image %d: maps of %d and %d values", i, len(p[1]), len(p[0]))
			}
			for j := range p[0] {
				if math.Float32bits(p[0][j]) != math.Float32bits(p[1][j]) {
					t.Fatalf("image %d: maps differ at %d", i, j)
				}
			}
		}
	}
}
