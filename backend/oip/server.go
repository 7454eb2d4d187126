//go:build !js

package oip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rdre-studio/studio/backend/inference"
)

// Runner is a model the server can run: *inference.Model is one.
type Runner interface {
	Info() inference.Info
	RunTensor(input []float32, n int) (maps, rdMaps, scores []float32, err error)
}

// ServerOptions configures a Server.
type ServerOptions struct {
	// Name and Version are reported by GET /v2.
	Name, Version string
	// MaxBatch is the most images one request may carry; 0 means 64.
	MaxBatch int
	// MaxConcurrent bounds the requests of one model that are read, decoded or run at a time (more wait);
	// 0 means 4. The graph itself runs one batch at a time (inference.Model's contract).
	MaxConcurrent int
	Log           *slog.Logger
}

// ModelVersion is the only version a served model has (and the version folder of an exported Triton
// repository).
const ModelVersion = "1"

// MinSHA256Prefix is the shortest SHA-256 prefix that names a model.
const MinSHA256Prefix = 12

// maxHeaderBytes bounds the JSON part of a request with binary data; maxJSONBody a request without.
const (
	maxHeaderBytes = 1 << 20
	maxJSONBody    = 64 << 20
)

// Server serves models over the protocol's REST API.
type Server struct {
	opt    ServerOptions
	log    *slog.Logger
	models []*served
	byName map[string]*served
}

type served struct {
	name string
	run  Runner
	info inference.Info
	sem  chan struct{}
}

// NewServer serves models under their file's base name without ".onnx" (see ModelName); a second model of
// the same name is reachable by its SHA-256 prefix only (a warning says so).
func NewServer(opt ServerOptions, models ...Runner) *Server {
	if opt.Name == "" {
		opt.Name = "rdre-studio"
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 64
	}
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = 4
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	s := &Server{opt: opt, log: opt.Log, byName: map[string]*served{}}
	for _, m := range models {
		info := m.Info()
		sv := &served{name: ModelName(info.Path), run: m, info: info, sem: make(chan struct{}, opt.MaxConcurrent)}
		if _, dup := s.byName[sv.name]; dup || sv.name == "" {
			s.log.Warn("oip: two models share a name; this one is served under its sha256 only", "name", sv.name, "path", info.Path, "sha256", info.SHA256)
		} else {
			s.byName[sv.name] = sv
		}
		s.models = append(s.models, sv)
		s.log.Info("oip: serving model", "url", "/v2/models/"+sv.name, "sha256", info.SHA256[:min(12, len(info.SHA256))])
	}
	return s
}

// ModelName is the protocol name of a model file: its base name without the .onnx extension.
func ModelName(path string) string {
	base := filepath.Base(path)
	if strings.EqualFold(filepath.Ext(base), ".onnx") {
		base = base[:len(base)-len(".onnx")]
	}
	return base
}

// Register adds the routes through handle (server.Server.Handle, so that they pass the same token and
// Host checks as every other route).
func (s *Server) Register(handle func(pattern string, h http.Handler)) {
	handle("GET /v2", http.HandlerFunc(s.serverMetadata))
	handle("GET /v2/health/live", http.HandlerFunc(s.live))
	handle("GET /v2/health/ready", http.HandlerFunc(s.live))
	for _, v := range []string{"", "/versions/{version}"} {
		handle("GET /v2/models/{name}"+v, http.HandlerFunc(s.modelMetadata))
		handle("GET /v2/models/{name}"+v+"/ready", http.HandlerFunc(s.modelReady))
		handle("POST /v2/models/{name}"+v+"/infer", http.HandlerFunc(s.infer))
	}
	// Anything else under /v2/ is answered in the protocol's terms, not by the UI.
	handle("/v2/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/infer") {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "inference takes POST")
			return
		}
		writeError(w, http.StatusNotFound, "not a route of the Open Inference Protocol (see /v2/models/NAME)")
	}))
}

// Names lists the names the models are served under.
func (s *Server) Names() []string {
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *Server) serverMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, ServerMetadata{Name: s.opt.Name, Version: s.opt.Version, Extensions: []string{"binary_tensor_data"}})
}

// live answers the health probes: 200 with an empty body, as the protocol asks.
func (s *Server) live(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

// lookup finds the model of the request's name and version.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) *served {
	name, version := r.PathValue("name"), r.PathValue("version")
	m := s.byName[name]
	if m == nil && len(name) >= MinSHA256Prefix && isHex(name) {
		for _, c := range s.models {
			if strings.HasPrefix(c.info.SHA256, strings.ToLower(name)) {
				if m != nil {
					writeError(w, http.StatusNotFound, fmt.Sprintf("sha256 prefix %s names more than one model", name))
					return nil
				}
				m = c
			}
		}
	}
	if m == nil {
		// The name is not echoed: a reply must not carry text chosen by the requester.
		served := "no model (start it with --model FILE)"
		if len(s.byName) > 0 {
			served = strings.Join(s.Names(), ", ")
		}
		writeError(w, http.StatusNotFound, "unknown model; this server serves "+served)
		return nil
	}
	if version != "" && version != ModelVersion {
		writeError(w, http.StatusNotFound, "unknown model version; the only version is "+ModelVersion)
		return nil
	}
	return m
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Metadata is the model metadata a served model is described by: the contract's tensors, and as
// parameters the file's metadata (rdre.* and other keys) plus sha256, max_batch_size and, when device is
// not empty, device. It is also the content of the sidecar MODEL.onnx.rdre.json.
func Metadata(name string, info inference.Info, maxBatch int, device string) ModelMetadata {
	S := int64(info.InputSize)
	p := Parameters{}
	for k, v := range info.Metadata {
		p[k] = v
	}
	p[ParamSHA256] = info.SHA256
	if maxBatch > 0 {
		p[ParamMaxBatch] = strconv.Itoa(maxBatch)
	}
	if device != "" {
		p[ParamDevice] = device
	}
	return ModelMetadata{
		Name: name, Versions: []string{ModelVersion}, Platform: "onnxruntime_onnx",
		Inputs: []TensorMetadata{{Name: inference.InputName, Datatype: "FP32", Shape: []int64{-1, 3, S, S}}},
		Outputs: []TensorMetadata{
			{Name: inference.OutputMap, Datatype: "FP32", Shape: []int64{-1, 1, S, S}},
			{Name: inference.OutputScor, Datatype: "FP32", Shape: []int64{-1}},
			{Name: inference.OutputRD, Datatype: "FP32", Shape: []int64{-1, 1, S, S}},
		},
		Parameters: p,
	}
}

// Parameters of the model metadata besides the file's own metadata keys.
const (
	ParamSHA256   = "sha256"         // the ONNX file's SHA-256
	ParamMaxBatch = "max_batch_size" // the most images one request may carry
	ParamDevice   = "device"         // where the server runs the graph (cpu, cuda)
)

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) {
	m := s.lookup(w, r)
	if m == nil {
		return
	}
	writeJSON(w, http.StatusOK, Metadata(m.name, m.info, s.opt.MaxBatch, m.info.Device))
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) {
	if s.lookup(w, r) != nil {
		w.WriteHeader(http.StatusOK)
	}
}

// errStatus carries an HTTP status with an error.
type errStatus struct {
	code int
	err  error
}

func (e *errStatus) Error() string { return e.err.Error() }

func fail(code int, format string, args ...any) error {
	return &errStatus{code, fmt.Errorf(format, args...)}
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	m := s.lookup(w, r)
	if m == nil {
		return
	}
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	case <-r.Context().Done():
		return
	}
	body, hlen, err := s.inferBody(w, r, m)
	if err == nil {
		w.Header().Set("Content-Type", "application/json")
		if hlen >= 0 {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set(HeaderContentLength, strconv.Itoa(hlen))
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		return
	}
	code := http.StatusInternalServerError
	var es *errStatus
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &es):
		code = es.code
	case errors.As(err, &mb):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, inference.ErrNonFinite):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, context.Canceled):
		return
	}
	if code >= 500 {
		s.log.Error("oip: inference failed", "model", m.name, "err", err)
	}
	writeError(w, code, err.Error())
}

// inferBody reads, checks and runs one request and returns the response body.
func (s *Server) inferBody(w http.ResponseWriter, r *http.Request, m *served) ([]byte, int, error) {
	S := m.info.InputSize
	maxElems := int64(s.opt.MaxBatch) * 3 * int64(S) * int64(S)
	hlen, err := HeaderLength(r.Header)
	if err != nil {
		return nil, 0, fail(http.StatusBadRequest, "%v", err)
	}
	if hlen > maxHeaderBytes {
		return nil, 0, fail(http.StatusRequestEntityTooLarge, "JSON header of %d bytes, more than %d", hlen, maxHeaderBytes)
	}
	// Binary FP32 is 4 bytes an element; JSON text takes more (up to about 16 for a float32 and its comma),
	// and is for small requests (curl, tests): it is bounded to maxJSONBody.
	limit := maxHeaderBytes + 4*maxElems
	if hlen < 0 {
		limit = min(maxHeaderBytes+20*maxElems, maxJSONBody)
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		return nil, 0, err
	}
	req, err := DecodeInferRequest(body, hlen)
	if err != nil {
		return nil, 0, fail(http.StatusBadRequest, "%v", err)
	}
	want := fmt.Sprintf("want one input %q FP32 [N 3 %d %d] with N in 1..%d", inference.InputName, S, S, s.opt.MaxBatch)
	if len(req.Inputs) != 1 || req.Inputs[0].Name != inference.InputName {
		names := make([]string, len(req.Inputs))
		for i, in := range req.Inputs {
			names[i] = strconv.Quote(truncate(in.Name, 64))
		}
		return nil, 0, fail(http.StatusBadRequest, "inputs [%s]: %s", strings.Join(names, ", "), want)
	}
	in := req.Inputs[0]
	sh := in.Shape
	if in.Datatype != "FP32" || len(sh) != 4 || sh[0] < 1 || sh[0] > int64(s.opt.MaxBatch) || sh[1] != 3 || sh[2] != int64(S) || sh[3] != int64(S) {
		return nil, 0, fail(http.StatusBadRequest, "input %q is %s %v: %s", in.Name, truncate(in.Datatype, 16), sh, want)
	}
	n := int(sh[0])
	input, err := in.Float32s()
	if err != nil {
		return nil, 0, fail(http.StatusBadRequest, "%v", err)
	}
	// Which outputs, and how: the request's list (default: all three), binary where asked.
	allBinary, _, err := req.Parameters.Bool(ParamBinaryDataOutput)
	if err != nil {
		return nil, 0, fail(http.StatusBadRequest, "%v", err)
	}
	type wanted struct {
		name   string
		binary bool
	}
	var outs []wanted
	if len(req.Outputs) == 0 {
		for _, name := range []string{inference.OutputMap, inference.OutputScor, inference.OutputRD} {
			outs = append(outs, wanted{name, allBinary})
		}
	}
	for _, o := range req.Outputs {
		if o.Name != inference.OutputMap && o.Name != inference.OutputScor && o.Name != inference.OutputRD {
			return nil, 0, fail(http.StatusBadRequest, "unknown output %q: the outputs are %s, %s and %s", truncate(o.Name, 64), inference.OutputMap, inference.OutputScor, inference.OutputRD)
		}
		b, set, err := o.Parameters.Bool(ParamBinaryData)
		if err != nil {
			return nil, 0, fail(http.StatusBadRequest, "output %s: %v", o.Name, err)
		}
		if !set {
			b = allBinary
		}
		outs = append(outs, wanted{o.Name, b})
	}

	maps, rds, scores, err := m.run.RunTensor(input, n)
	if err != nil {
		if strings.Contains(err.Error(), "model is closed") {
			return nil, 0, fail(http.StatusServiceUnavailable, "%v", err)
		}
		return nil, 0, err
	}
	resp := &InferResponse{ModelName: m.name, ModelVersion: ModelVersion, ID: req.ID}
	for _, o := range outs {
		var t Tensor
		switch o.name {
		case inference.OutputMap:
			t = FP32Tensor(o.name, []int64{int64(n), 1, int64(S), int64(S)}, maps)
		case inference.OutputScor:
			t = FP32Tensor(o.name, []int64{int64(n)}, scores)
		case inference.OutputRD:
			t = FP32Tensor(o.name, []int64{int64(n), 1, int64(S), int64(S)}, rds)
		}
		t.Binary = o.binary
		resp.Outputs = append(resp.Outputs, t)
	}
	return EncodeInferResponse(resp)
}

// readBody reads at most limit bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fail(http.StatusRequestEntityTooLarge, "body of %d bytes, more than the %d this model's largest batch takes", r.ContentLength, limit)
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength > 0 {
		buf := bytes.NewBuffer(make([]byte, 0, r.ContentLength))
		if _, err := buf.ReadFrom(rd); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	return io.ReadAll(rd)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		code, raw = http.StatusInternalServerError, []byte(`{"error":"encode reply"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(raw)
}

// writeError replies {"error": msg}; msg is bounded, since it may quote names a request chose.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: truncate(msg, 1024)})
}
