//go:build !js

package oip_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/oip"
)

func do(t *testing.T, method, url, token string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// The routes of the protocol, behind the server's token and Host checks.
func TestServer_Routes(t *testing.T) {
	ep := startEndpoint(t, "127.0.0.1:0", "tok")
	base := "http://" + ep.addr
	local, err := inference.Open(testenv.SmallModel(t), inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	sha := local.Info().SHA256

	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v2/health/live", "tok", 200},
		{"GET", "/v2/health/ready", "tok", 200},
		{"GET", "/v2/health/live", "", 401},
		{"GET", "/v2/models/model", "wrong", 401},
		{"GET", "/v2/models/model/ready", "tok", 200},
		{"GET", "/v2/models/model/versions/1/ready", "tok", 200},
		{"GET", "/v2/models/model/versions/2/ready", "tok", 404},
		{"GET", "/v2/models/other/ready", "tok", 404},
		{"GET", "/v2/models/" + sha[:12] + "/ready", "tok", 200},
		{"GET", "/v2/models/" + sha[:8] + "/ready", "tok", 404},
		{"GET", "/v2/models/model/infer", "tok", 405},
	} {
		if code, _, body := do(t, c.method, base+c.path, c.token, nil, nil); code != c.want {
			t.Errorf("%s %s (token %q): %d %s, want %d", c.method, c.path, c.token, code, body, c.want)
		}
	}
	// A foreign Host (DNS rebinding) is refused like on every other route.
	req, _ := http.NewRequest("GET", base+"/v2/models/model", nil)
	req.Host = "evil.example:80"
	req.Header.Set("Authorization", "Bearer tok")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %v %v", resp, err)
	}

	code, _, body := do(t, "GET", base+"/v2", "tok", nil, nil)
	var sm oip.ServerMetadata
	if code != 200 || json.Unmarshal(body, &sm) != nil || sm.Extensions[0] != "binary_tensor_data" {
		t.Fatalf("server metadata: %d %s", code, body)
	}
	code, _, body = do(t, "GET", base+"/v2/models/model", "tok", nil, nil)
	var md oip.ModelMetadata
	if code != 200 || json.Unmarshal(body, &md) != nil {
		t.Fatalf("model metadata: %d %s", code, body)
	}
	want := oip.Metadata("model", local.Info(), 64, "cpu")
	wantRaw, _ := json.Marshal(want)
	var a, b any
	json.Unmarshal(wantRaw, &a)
	json.Unmarshal(body, &b)
	if !jsonEqual(a, b) {
		t.Fatalf("model metadata:\n%s\nwant\n%s", body, wantRaw)
	}
	if md.Inputs[0].Name != "image" || md.Inputs[0].Shape[0] != -1 || md.Parameters["rdre.input_size"] != "64" || md.Parameters["sha256"] != sha {
		t.Fatalf("model metadata: %+v", md)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// JSON and binary requests give the same outputs, bit for bit (FP32 JSON text is exact), equal to a local
// run of the same batch; bad requests get 400 with what was expected.
func TestServer_Infer(t *testing.T) {
	ep := startEndpoint(t, "127.0.0.1:0", "")
	url := "http://" + ep.addr + "/v2/models/model/infer"
	local, err := inference.Open(testenv.SmallModel(t), inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	const n, S = 2, 64
	in := make([]float32, n*3*S*S)
	r := rand.New(rand.NewSource(3))
	for i := range in {
		in[i] = float32(r.NormFloat64())
	}
	wantMaps, wantRD, wantScores, err := local.RunTensor(in, n)
	if err != nil {
		t.Fatal(err)
	}
	input := oip.FP32Tensor("image", []int64{n, 3, S, S}, in)
	for _, binaryIn := range []bool{false, true} {
		for _, binaryOut := range []bool{false, true} {
			input.Binary = binaryIn
			req := &oip.InferRequest{ID: "r1", Inputs: []oip.Tensor{input}}
			if binaryOut {
				req.Parameters = oip.Parameters{"binary_data_output": true}
			}
			body, hlen, err := oip.EncodeInferRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			hdr := map[string]string{}
			if hlen >= 0 {
				hdr[oip.HeaderContentLength] = strconv.Itoa(hlen)
			}
			code, h, raw := do(t, "POST", url, "", body, hdr)
			if code != 200 {
				t.Fatalf("binary in %v out %v: %d %s", binaryIn, binaryOut, code, raw)
			}
			rhlen, _ := oip.HeaderLength(h)
			if (rhlen >= 0) != binaryOut {
				t.Fatalf("binary out %v: header length %d", binaryOut, rhlen)
			}
			resp, err := oip.DecodeInferResponse(raw, rhlen)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ID != "r1" || resp.ModelName != "model" || len(resp.Outputs) != 3 {
				t.Fatalf("response %+v", resp)
			}
			for i, want := range [][]float32{wantMaps, wantScores, wantRD} {
				got, err := resp.Outputs[i].Float32s()
				if err != nil || len(got) != len(want) {
					t.Fatalf("output %d: %v", i, err)
				}
				for j := range want {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("binary in %v out %v: output %s value %d: %v, want %v", binaryIn, binaryOut, resp.Outputs[i].Name, j, got[j], want[j])
					}
				}
			}
		}
	}
	// One output, asked by name.
	body, hlen, _ := oip.EncodeInferRequest(&oip.InferRequest{Inputs: []oip.Tensor{input}, Outputs: []oip.RequestedOutput{{Name: "score", Parameters: oip.Parameters{"binary_data": true}}}})
	code, h, raw := do(t, "POST", url, "", body, map[string]string{oip.HeaderContentLength: strconv.Itoa(hlen)})
	rhlen, _ := oip.HeaderLength(h)
	if resp, err := oip.DecodeInferResponse(raw, rhlen); code != 200 || err != nil || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "score" {
		t.Fatalf("one output: %d %v %s", code, err, raw)
	}

	bad := func(t oip.Tensor, outs ...oip.RequestedOutput) []byte {
		t.Binary = false
		b, _, err := oip.EncodeInferRequest(&oip.InferRequest{Inputs: []oip.Tensor{t}, Outputs: outs})
		if err != nil {
			panic(err)
		}
		return b
	}
	small := oip.FP32Tensor("image", []int64{1, 3, 2, 2}, make([]float32, 12))
	wrongName := oip.FP32Tensor("input", []int64{1, 3, 64, 64}, make([]float32, 3*64*64))
	tooMany := oip.FP32Tensor("image", []int64{65, 3, 1, 1}, make([]float32, 65*3))
	for _, c := range []struct {
		body []byte
		want string
	}{
		{[]byte(`{"inputs":`), "JSON"},
		{bad(small), `input "image" is FP32 [1 3 2 2]: want one input "image" FP32 [N 3 64 64] with N in 1..64`},
		{bad(wrongName), `inputs ["input"]: want one input "image"`},
		{bad(tooMany), "with N in 1..64"},
		{bad(oip.FP32Tensor("image", []int64{1, 3, 64, 64}, make([]float32, 3*64*64)), oip.RequestedOutput{Name: "logits"}), `unknown output "logits"`},
	} {
		code, _, raw := do(t, "POST", url, "", c.body, nil)
		var er oip.ErrorResponse
		if code != 400 || json.Unmarshal(raw, &er) != nil || !strings.Contains(er.Error, c.want) {
			t.Errorf("%.60s: %d %s (want 400 and %q)", c.body, code, raw, c.want)
		}
	}
	// A body larger than the largest batch is refused before it is read.
	code, _, _ = do(t, "POST", url, "", make([]byte, 10), map[string]string{oip.HeaderContentLength: "5000000"})
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge header: %d", code)
	}
}

// A remote model whose endpoint does not honour the contract is refused with the messages of a local file.
func TestRemote_ContractErrors(t *testing.T) {
	initORT(t)
	local, err := inference.Open(testenv.SmallModel(t), inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	good := oip.Metadata("m", local.Info(), 8, "cpu")
	for _, c := range []struct {
		name string
		edit func(md *oip.ModelMetadata)
		want string
	}{
		{"wrong input size", func(md *oip.ModelMetadata) { md.Inputs[0].Shape = []int64{-1, 3, 32, 32} }, `input "image" has shape [-1 3 32 32], want [N 3 64 64]`},
		{"missing output", func(md *oip.ModelMetadata) { md.Outputs = md.Outputs[:2] }, `output "rd_map" is missing`},
		{"int input", func(md *oip.ModelMetadata) { md.Inputs[0].Datatype = "INT64" }, "want a float32 tensor"},
		{"no metadata", func(md *oip.ModelMetadata) { md.Parameters = nil }, "pass the sidecar MODEL.onnx.rdre.json"},
		{"bad mean", func(md *oip.ModelMetadata) { md.Parameters["rdre.mean"] = "1,2" }, "expected rdre.mean as three comma-separated numbers"},
	} {
		md := good
		md.Inputs = append([]oip.TensorMetadata(nil), good.Inputs...)
		md.Outputs = append([]oip.TensorMetadata(nil), good.Outputs...)
		md.Parameters = oip.Parameters{}
		for k, v := range good.Parameters {
			md.Parameters[k] = v
		}
		c.edit(&md)
		hs := fakeServer(t, md, nil, nil)
		_, err := oip.Open([]string{hs + "/v2/models/m"}, oip.Options{})
		if !errors.Is(err, inference.ErrContract) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want %q)", c.name, err, c.want)
		}
	}
	if _, err := oip.Open([]string{"http://127.0.0.1:1/v2/models/m"}, oip.Options{}); err == nil || !strings.Contains(err.Error(), "no endpoint answered") {
		t.Errorf("nothing listening: %v", err)
	}
	for _, u := range []string{"ftp://h/v2/models/m", "http://h/models/m", "http://h/v2/models/", "http://h/v2/models/m/infer"} {
		if _, err := oip.ParseModelURL(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if name, err := oip.ParseModelURL("https://h:8443/prefix/v2/models/demo/versions/1/?token=x"); err != nil || name != "demo" {
		t.Errorf("versioned URL: %q %v", name, err)
	}
}
