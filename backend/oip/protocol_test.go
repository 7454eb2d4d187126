//go:build !js

package oip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/internal/testalloc"
)

// The fixtures are the protocol's documented examples (testdata/README.md names the sources: KServe's
// "Predict Protocol - Version 2", docs/predict-api/v2/required_api.md, "Inference Request Examples"; and
// Triton's docs/protocol/extension_binary_data.md, "Examples").

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// sameJSON compares two JSON texts as values.
func sameJSON(t *testing.T, what string, a, b []byte) {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b)
	}
	if !reflect.DeepEqual(va, vb) {
		t.Fatalf("%s differ:\n%s\n%s", what, a, b)
	}
}

func u32(vs ...uint32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func f32(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func TestKServeRequestExample(t *testing.T) {
	doc := fixture(t, "kserve_infer_request.json")
	// As published, input1 declares 3 elements and holds 1: the decoder says so.
	_, err := DecodeInferRequest(doc, -1)
	if err == nil || !strings.Contains(err.Error(), `input "input1": shape [3] holds 3 elements, its data 1`) {
		t.Fatalf("published example: %v", err)
	}
	fixed := bytes.Replace(doc, []byte(`"data" : [ true ]`), []byte(`"data" : [ true, false, true ]`), 1)
	req, err := DecodeInferRequest(fixed, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := &InferRequest{
		ID: "42",
		Inputs: []Tensor{
			{Name: "input0", Datatype: "UINT32", Shape: []int64{2, 2}, Data: u32(1, 2, 3, 4)},
			{Name: "input1", Datatype: "BOOL", Shape: []int64{3}, Data: []byte{1, 0, 1}},
		},
		Outputs: []RequestedOutput{{Name: "output0"}},
	}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("decoded %+v\nwant %+v", req, want)
	}
	// The encoder writes the same object.
	body, hlen, err := EncodeInferRequest(want)
	if err != nil || hlen != -1 {
		t.Fatalf("encode: %v, header length %d", err, hlen)
	}
	sameJSON(t, "encoded request and the example", body, fixed)
}

func TestKServeResponseExample(t *testing.T) {
	doc := fixture(t, "kserve_infer_response.json")
	resp, err := DecodeInferResponse(doc, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := &InferResponse{ID: "42", Outputs: []Tensor{{Name: "output0", Datatype: "FP32", Shape: []int64{3, 2}, Data: f32(1.0, 1.1, 2.0, 2.1, 3.0, 3.1)}}}
	if !reflect.DeepEqual(resp, want) {
		t.Fatalf("decoded %+v\nwant %+v", resp, want)
	}
	got, _ := resp.Outputs[0].Float32s()
	if got[1] != float32(1.1) || got[5] != float32(3.1) {
		t.Fatalf("values %v", got)
	}
	body, hlen, err := EncodeInferResponse(want)
	if err != nil || hlen != -1 {
		t.Fatalf("encode: %v, header length %d", err, hlen)
	}
	// Ours also writes the (required) model_name, which the example leaves out.
	var enc map[string]any
	json.Unmarshal(body, &enc)
	if enc["model_name"] != "" {
		t.Fatalf("model_name %v", enc["model_name"])
	}
	delete(enc, "model_name")
	trimmed, _ := json.Marshal(enc)
	sameJSON(t, "encoded response and the example", trimmed, doc)
}

func TestTritonBinaryExamples(t *testing.T) {
	header := fixture(t, "triton_binary_request.json")
	body := append(append(append([]byte(nil), header...), u32(1, 2, 3, 4)...), 1, 0, 1)
	req, err := DecodeInferRequest(body, len(header))
	if err != nil {
		t.Fatal(err)
	}
	want := &InferRequest{
		Inputs: []Tensor{
			{Name: "input0", Datatype: "UINT32", Shape: []int64{2, 2}, Data: u32(1, 2, 3, 4), Binary: true},
			{Name: "input1", Datatype: "BOOL", Shape: []int64{3}, Data: []byte{1, 0, 1}, Binary: true},
		},
		Outputs: []RequestedOutput{{Name: "output0", Parameters: Parameters{"binary_data": true}}},
	}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("decoded %+v\nwant %+v", req, want)
	}
	enc, hlen, err := EncodeInferRequest(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc[hlen:], body[len(header):]) {
		t.Fatalf("binary part %v", enc[hlen:])
	}
	var doc map[string]any
	json.Unmarshal(header, &doc)
	delete(doc, "model_name") // the model is in the URL; the example repeats it
	trimmed, _ := json.Marshal(doc)
	sameJSON(t, "encoded request header and the example", enc[:hlen], trimmed)
	// The header must be exact: one byte more or less is an error, not a misread.
	for _, n := range []int{len(header) - 1, len(header) + 1, len(body) + 1} {
		if _, err := DecodeInferRequest(body, n); err == nil {
			t.Errorf("header length %d accepted", n)
		}
	}

	rheader := fixture(t, "triton_binary_response.json")
	vals := f32(1, 1.1, 2, 2.1, 3, 3.1)
	resp, err := DecodeInferResponse(append(append([]byte(nil), rheader...), vals...), len(rheader))
	if err != nil {
		t.Fatal(err)
	}
	wantResp := &InferResponse{Outputs: []Tensor{{Name: "output0", Datatype: "FP32", Shape: []int64{3, 2}, Data: vals, Binary: true}}}
	if !reflect.DeepEqual(resp, wantResp) {
		t.Fatalf("decoded %+v\nwant %+v", resp, wantResp)
	}
	enc, hlen, err = EncodeInferResponse(wantResp)
	if err != nil {
		t.Fatal(err)
	}
	var encDoc map[string]any
	json.Unmarshal(enc[:hlen], &encDoc)
	delete(encDoc, "model_name")
	trimmed, _ = json.Marshal(encDoc)
	sameJSON(t, "encoded response header and the example", trimmed, rheader)
	if !bytes.Equal(enc[hlen:], vals) {
		t.Fatal("binary part differs")
	}
}

// Every datatype travels both ways, as JSON and as binary, to the same bytes; FP32 and FP64 JSON text is
// the shortest that reads back exactly.
func TestRoundTrip_Datatypes(t *testing.T) {
	cases := []Tensor{
		{Name: "b", Datatype: "BOOL", Shape: []int64{2}, Data: []byte{1, 0}},
		{Name: "i8", Datatype: "INT8", Shape: []int64{2}, Data: []byte{0x80, 0x7f}},
		{Name: "i16", Datatype: "INT16", Shape: []int64{1}, Data: []byte{0x00, 0x80}},
		{Name: "i64", Datatype: "INT64", Shape: []int64{1}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0x80}},
		{Name: "u64", Datatype: "UINT64", Shape: []int64{1}, Data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{Name: "f32", Datatype: "FP32", Shape: []int64{1, 3}, Data: f32(0.1, -3.4028235e38, 1.4e-45)},
		{Name: "f64", Datatype: "FP64", Shape: []int64{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1))},
		{Name: "empty", Datatype: "FP32", Shape: []int64{0, 3}, Data: []byte{}},
	}
	for _, bin := range []bool{false, true} {
		in := make([]Tensor, len(cases))
		copy(in, cases)
		for i := range in {
			in[i].Binary = bin
		}
		body, hlen, err := EncodeInferRequest(&InferRequest{ID: "x", Inputs: in})
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeInferRequest(body, hlen)
		if err != nil {
			t.Fatalf("binary %v: %v\n%s", bin, err, body)
		}
		for i := range in {
			g := got.Inputs[i]
			if g.Name != in[i].Name || g.Datatype != in[i].Datatype || !reflect.DeepEqual(g.Shape, in[i].Shape) || !bytes.Equal(g.Data, in[i].Data) || g.Binary != bin {
				t.Errorf("binary %v: %s: got %+v want %+v", bin, in[i].Name, g, in[i])
			}
		}
	}
	// FP16 has no JSON form; NaN neither.
	if _, _, err := EncodeInferRequest(&InferRequest{Inputs: []Tensor{{Name: "h", Datatype: "FP16", Shape: []int64{1}, Data: []byte{0, 0x3c}}}}); err == nil {
		t.Error("FP16 as JSON accepted")
	}
	if _, _, err := EncodeInferRequest(&InferRequest{Inputs: []Tensor{{Name: "n", Datatype: "FP32", Shape: []int64{1}, Data: f32(float32(math.NaN()))}}}); err == nil {
		t.Error("NaN as JSON accepted")
	}
}

func TestDecode_Refusals(t *testing.T) {
	cases := map[string]struct {
		body string
		hlen int
		want string
	}{
		"no inputs":        {`{"inputs":[]}`, -1, `no "inputs"`},
		"not JSON":         {`{"inputs":`, -1, "JSON"},
		"trailing bytes":   {`{"inputs":[{"name":"a","shape":[1],"datatype":"INT8","data":[1]}]}xyz`, -1, "more data after the object"},
		"negative dim":     {`{"inputs":[{"name":"a","shape":[-1],"datatype":"INT8","data":[1]}]}`, -1, "negative"},
		"overflowing dims": {`{"inputs":[{"name":"a","shape":[4294967296,4294967296],"datatype":"INT8","data":[1]}]}`, -1, "more than"},
		"bytes":            {`{"inputs":[{"name":"a","shape":[1],"datatype":"BYTES","data":["x"]}]}`, -1, "not supported"},
		"string data":      {`{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":["1"]}]}`, -1, "strings"},
		"int out of range": {`{"inputs":[{"name":"a","shape":[1],"datatype":"INT8","data":[300]}]}`, -1, "not an INT8"},
		"fraction as int":  {`{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[1.5]}]}`, -1, "not an INT32"},
		"no data":          {`{"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}`, -1, "neither data"},
		"both":             {`{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}abcd`, 89, "both"},
		"size mismatch":    {`{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}abcd`, 82, "is 8 bytes"},
		"short binary":     {`{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}abcd`, 82, "4 bytes of binary data are left"},
		"left over":        {`{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}abcdefgh`, 82, "after the last binary input"},
		"size not integer": {`{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":"4"}}]}abcd`, 84, "not an integer"},
		"unnamed":          {`{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}`, -1, "no name"},
		"no shape":         {`{"inputs":[{"name":"a","datatype":"FP32","data":[1]}]}`, -1, "no shape"},
	}
	for name, c := range cases {
		if c.hlen > 0 {
			c.hlen = strings.LastIndexByte(c.body, '}') + 1
		}
		_, err := DecodeInferRequest([]byte(c.body), c.hlen)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want %q)", name, err, c.want)
		}
	}
}

// A huge declared shape costs nothing: sizes are checked against the bytes present before anything is
// allocated for them.
func TestDecode_HugeShapeDoesNotAllocate(t *testing.T) {
	bodies := [][2]any{
		{`{"inputs":[{"name":"image","shape":[65536,3,4096,4096],"datatype":"FP32","parameters":{"binary_data_size":13194139533312}}]}abcd`, true},
		{`{"inputs":[{"name":"image","shape":[65536,3,4096,4096],"datatype":"FP32","data":[1,2,3]}]}`, false},
		{`{"inputs":[{"name":"image","shape":[1099511627776],"datatype":"FP64","parameters":{"binary_data_size":8796093022208}}]}abcd`, true},
	}
	for _, b := range bodies {
		body := []byte(b[0].(string))
		hlen := -1
		if b[1].(bool) {
			hlen = bytes.LastIndexByte(body, '}') + 1
		}
		alloc := testalloc.Bytes(func() {
			if _, err := DecodeInferRequest(body, hlen); err == nil {
				t.Errorf("accepted %s", body)
			}
		})
		if alloc > 256<<10 {
			t.Errorf("%s: allocated %d bytes", body, alloc)
		}
	}
}

// FuzzDecodeInferRequest: no input makes the decoder panic or allocate more than a bounded multiple of its
// size; what it accepts encodes and decodes back to the same tensors.
func FuzzDecodeInferRequest(f *testing.F) {
	for _, name := range []string{"kserve_infer_request.json", "kserve_infer_response.json"} {
		f.Add(fixture(f, name), -1)
	}
	h := fixture(f, "triton_binary_request.json")
	f.Add(append(append(append([]byte(nil), h...), u32(1, 2, 3, 4)...), 1, 0, 1), len(h))
	f.Add([]byte(`{"inputs":[{"name":"image","shape":[1,3,1,1],"datatype":"FP32","parameters":{"binary_data_size":12}}],"outputs":[{"name":"score"}]}`+"\x00\x00\x80?\x00\x00\x00@\x00\x00@@"), 127)
	f.Add([]byte(`{"inputs":[{"name":"a","shape":[2,2],"datatype":"INT16","data":[[1,-2],[3,4]]}]}`), -1)
	f.Fuzz(func(t *testing.T, body []byte, hlen int) {
		var req *InferRequest
		var err error
		alloc := testalloc.Bytes(func() { req, err = DecodeInferRequest(body, hlen) })
		// encoding/json's own work is proportional to the input; nothing may follow a declared size.
		if limit := uint64(64*len(body) + 256<<10); alloc > limit {
			t.Fatalf("decoding %d bytes allocated %d (limit %d)", len(body), alloc, limit)
		}
		if err != nil {
			return
		}
		enc, elen, err := EncodeInferRequest(req)
		if err != nil {
			// JSON cannot carry every value a binary tensor holds (NaN); binary can.
			for i := range req.Inputs {
				req.Inputs[i].Binary = true
			}
			if enc, elen, err = EncodeInferRequest(req); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
		}
		again, err := DecodeInferRequest(enc, elen)
		if err != nil {
			t.Fatalf("decode of the re-encoded request: %v", err)
		}
		for i := range req.Inputs {
			a, b := req.Inputs[i], again.Inputs[i]
			if a.Name != b.Name || a.Datatype != b.Datatype || !slices.Equal(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("input %d changed: %+v -> %+v", i, a, b)
			}
		}
	})
}

// BenchmarkRoundTrip is the protocol's own cost for one request of 8 images at S=128 (the demo model):
// encode the request, decode it, encode the three outputs, decode them; no network, no graph.
func BenchmarkRoundTrip(b *testing.B) {
	const n, S = 8, 128
	in := make([]float32, n*3*S*S)
	maps := make([]float32, n*S*S)
	for i := range in {
		in[i] = float32(i%1000) / 999
	}
	b.SetBytes(int64(4 * (len(in) + 2*len(maps) + n)))
	for b.Loop() {
		body, hlen, err := EncodeInferRequest(&InferRequest{Inputs: []Tensor{FP32Tensor("image", []int64{n, 3, S, S}, in)}})
		if err != nil {
			b.Fatal(err)
		}
		req, err := DecodeInferRequest(body, hlen)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := req.Inputs[0].Float32s(); err != nil {
			b.Fatal(err)
		}
		out, hlen, err := EncodeInferResponse(&InferResponse{Outputs: []Tensor{
			FP32Tensor("anomaly_map", []int64{n, 1, S, S}, maps), FP32Tensor("score", []int64{n}, maps[:n]), FP32Tensor("rd_map", []int64{n, 1, S, S}, maps)}})
		if err != nil {
			b.Fatal(err)
		}
		resp, err := DecodeInferResponse(out, hlen)
		if err != nil {
			b.Fatal(err)
		}
		for i := range resp.Outputs {
			resp.Outputs[i].Float32s()
		}
	}
}
