//go:build !js

package oip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unsafe"
)

// The protocol's objects. Field names and meanings follow the KServe v2 "Predict Protocol - Version 2"
// (kserve/kserve docs/predict-api/v2/required_api.md) and Triton's binary tensor data extension
// (triton-inference-server/server docs/protocol/extension_binary_data.md).

// HeaderContentLength names the header that gives the length of the JSON part of a body that carries
// binary tensor data after it.
const HeaderContentLength = "Inference-Header-Content-Length"

// Parameter names of the binary tensor data extension.
const (
	ParamBinaryDataSize   = "binary_data_size"   // on an input or output: its bytes after the JSON
	ParamBinaryData       = "binary_data"        // on a requested output: return it as binary data
	ParamBinaryDataOutput = "binary_data_output" // on a request: every output as binary data
)

// ServerMetadata is the reply to GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// TensorMetadata describes one input or output of a model; -1 marks a variable dimension.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelMetadata is the reply to GET /v2/models/NAME. Parameters is not part of the core protocol: rdre puts
// the model's rdre.* metadata there (other servers leave it out).
type ModelMetadata struct {
	Name       string           `json:"name"`
	Versions   []string         `json:"versions,omitempty"`
	Platform   string           `json:"platform"`
	Inputs     []TensorMetadata `json:"inputs"`
	Outputs    []TensorMetadata `json:"outputs"`
	Parameters Parameters       `json:"parameters,omitempty"`
}

// ErrorResponse is the body of every failed request.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Parameters are the protocol's key/value parameters: each value is a string, a number (json.Number once
// decoded) or a boolean.
type Parameters map[string]any

// String returns the value of key as text (numbers and booleans as written), and whether it is there.
func (p Parameters) String(key string) (string, bool) {
	v, ok := p[key]
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}

// Int64 returns the integer value of key; an error when it is there but not an integer.
func (p Parameters) Int64(key string) (int64, bool, error) {
	v, ok := p[key]
	if !ok {
		return 0, false, nil
	}
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return 0, true, fmt.Errorf("parameter %s: %q is not an integer", key, x.String())
		}
		return n, true, nil
	case int:
		return int64(x), true, nil
	case int64:
		return x, true, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true, nil
		}
	}
	return 0, true, fmt.Errorf("parameter %s: %v is not an integer", key, v)
}

// Bool returns the boolean value of key; an error when it is there but not a boolean.
func (p Parameters) Bool(key string) (bool, bool, error) {
	v, ok := p[key]
	if !ok {
		return false, false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, true, fmt.Errorf("parameter %s: %v is not a boolean", key, v)
	}
	return b, true, nil
}

// Tensor is an input or output tensor with its elements as little-endian, row-major bytes, whichever way
// it travelled (binary data or JSON).
type Tensor struct {
	Name     string
	Datatype string
	Shape    []int64
	// Parameters are the tensor's parameters other than binary_data_size.
	Parameters Parameters
	// Data holds the elements: little-endian, row major, no padding. A decoded binary tensor aliases the
	// body it was decoded from.
	Data []byte
	// Binary is whether the tensor travels (or travelled) as binary data after the JSON.
	Binary bool
}

// FP32Tensor builds a binary FP32 tensor.
func FP32Tensor(name string, shape []int64, v []float32) Tensor {
	data := make([]byte, 4*len(v))
	if littleEndian {
		copy(data, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
	} else {
		for i, f := range v {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(f))
		}
	}
	return Tensor{Name: name, Datatype: "FP32", Shape: append([]int64(nil), shape...), Data: data, Binary: true}
}

// Float32s returns the elements of an FP32 tensor.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.Datatype != "FP32" {
		return nil, fmt.Errorf("tensor %q is %s, want FP32", t.Name, t.Datatype)
	}
	if len(t.Data)%4 != 0 {
		return nil, fmt.Errorf("tensor %q holds %d bytes, not whole FP32 values", t.Name, len(t.Data))
	}
	out := make([]float32, len(t.Data)/4)
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*len(out)), t.Data)
		return out, nil
	}
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// littleEndian is whether this machine stores numbers as the protocol does, so that FP32 data is copied
// as memory instead of converted element by element.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Elements is the number of elements the shape declares; an error for a negative dimension or a count
// beyond maxElements.
func Elements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", shape, d)
		}
	}
	for _, d := range shape {
		if d == 0 {
			return 0, nil
		}
		if n > maxElements/d {
			return 0, fmt.Errorf("shape %v: more than %d elements", shape, int64(maxElements))
		}
		n *= d
	}
	return n, nil
}

// maxElements bounds the element count of one tensor: far above any real batch, low enough that
// elements x 8 bytes cannot overflow.
const maxElements = 1 << 40

// ElemSize is the bytes of one element of datatype dt; 0 for BYTES (variable) and unknown types.
func ElemSize(dt string) int {
	switch dt {
	case "BOOL", "UINT8", "INT8":
		return 1
	case "UINT16", "INT16", "FP16", "BF16":
		return 2
	case "UINT32", "INT32", "FP32":
		return 4
	case "UINT64", "INT64", "FP64":
		return 8
	}
	return 0
}

// RequestedOutput names an output the client wants, with its parameters (binary_data).
type RequestedOutput struct {
	Name       string
	Parameters Parameters
}

// InferRequest is an inference request.
type InferRequest struct {
	ID         string
	Parameters Parameters
	Inputs     []Tensor
	// Outputs lists the outputs wanted; empty means all of them, as JSON unless binary_data_output.
	Outputs []RequestedOutput
}

// InferResponse is an inference response.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Parameters   Parameters
	Outputs      []Tensor
}

// The objects as they are written.
type wireTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters Parameters      `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

type wireOutput struct {
	Name       string     `json:"name"`
	Parameters Parameters `json:"parameters,omitempty"`
}

type wireRequest struct {
	ID         string       `json:"id,omitempty"`
	Parameters Parameters   `json:"parameters,omitempty"`
	Inputs     []wireTensor `json:"inputs"`
	Outputs    []wireOutput `json:"outputs,omitempty"`
}

type wireResponse struct {
	ModelName    string       `json:"model_name"`
	ModelVersion string       `json:"model_version,omitempty"`
	ID           string       `json:"id,omitempty"`
	Parameters   Parameters   `json:"parameters,omitempty"`
	Outputs      []wireTensor `json:"outputs"`
}

// EncodeInferRequest writes r as a body; headerLen is the length of its JSON part when binary data follows
// (send it as Inference-Header-Content-Length), else -1.
func EncodeInferRequest(r *InferRequest) (body []byte, headerLen int, err error) {
	w := wireRequest{ID: r.ID, Parameters: r.Parameters, Inputs: make([]wireTensor, len(r.Inputs))}
	for _, o := range r.Outputs {
		w.Outputs = append(w.Outputs, wireOutput(o))
	}
	bin, err := toWire(r.Inputs, w.Inputs)
	if err != nil {
		return nil, 0, fmt.Errorf("encode inference request: %w", err)
	}
	return assemble(w, bin)
}

// EncodeInferResponse writes r as a body; headerLen as for EncodeInferRequest.
func EncodeInferResponse(r *InferResponse) (body []byte, headerLen int, err error) {
	w := wireResponse{ModelName: r.ModelName, ModelVersion: r.ModelVersion, ID: r.ID, Parameters: r.Parameters, Outputs: make([]wireTensor, len(r.Outputs))}
	bin, err := toWire(r.Outputs, w.Outputs)
	if err != nil {
		return nil, 0, fmt.Errorf("encode inference response: %w", err)
	}
	return assemble(w, bin)
}

func toWire(ts []Tensor, out []wireTensor) ([][]byte, error) {
	var bin [][]byte
	for i, t := range ts {
		if sz := ElemSize(t.Datatype); sz == 0 {
			return nil, fmt.Errorf("tensor %q: datatype %q is not supported", t.Name, t.Datatype)
		} else if n, err := Elements(t.Shape); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		} else if n*int64(sz) != int64(len(t.Data)) {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, it holds %d", t.Name, t.Shape, t.Datatype, n*int64(sz), len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		w := wireTensor{Name: t.Name, Shape: shape, Datatype: t.Datatype}
		params := make(Parameters, len(t.Parameters)+1)
		for k, v := range t.Parameters {
			if k != ParamBinaryDataSize {
				params[k] = v
			}
		}
		if t.Binary {
			params[ParamBinaryDataSize] = len(t.Data)
			bin = append(bin, t.Data)
		} else {
			data, err := appendJSONData(nil, t)
			if err != nil {
				return nil, err
			}
			w.Data = data
		}
		if len(params) > 0 {
			w.Parameters = params
		}
		out[i] = w
	}
	return bin, nil
}

func assemble(header any, bin [][]byte) ([]byte, int, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return nil, 0, err
	}
	if len(bin) == 0 {
		return h, -1, nil
	}
	size := len(h)
	for _, b := range bin {
		size += len(b)
	}
	body := make([]byte, 0, size)
	body = append(body, h...)
	for _, b := range bin {
		body = append(body, b...)
	}
	return body, len(h), nil
}

// DecodeInferRequest reads a request body; headerLen is the Inference-Header-Content-Length (-1 when the
// header is absent: the whole body is JSON). Binary inputs alias body. Nothing is allocated by a declared
// size before it is checked against the bytes present.
func DecodeInferRequest(body []byte, headerLen int) (*InferRequest, error) {
	header, bin, err := split(body, headerLen)
	if err != nil {
		return nil, fmt.Errorf("inference request: %w", err)
	}
	var w wireRequest
	if err := unmarshal(header, &w); err != nil {
		return nil, fmt.Errorf("inference request: %w", err)
	}
	if len(w.Inputs) == 0 {
		return nil, errors.New(`inference request: no "inputs"`)
	}
	inputs, rest, err := fromWire(w.Inputs, bin, "input")
	if err != nil {
		return nil, fmt.Errorf("inference request: %w", err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("inference request: %d bytes of binary data after the last binary input", len(rest))
	}
	r := &InferRequest{ID: w.ID, Parameters: w.Parameters, Inputs: inputs}
	for _, o := range w.Outputs {
		if o.Name == "" {
			return nil, errors.New("inference request: a requested output has no name")
		}
		r.Outputs = append(r.Outputs, RequestedOutput(o))
	}
	return r, nil
}

// DecodeInferResponse reads a response body, as DecodeInferRequest a request.
func DecodeInferResponse(body []byte, headerLen int) (*InferResponse, error) {
	header, bin, err := split(body, headerLen)
	if err != nil {
		return nil, fmt.Errorf("inference response: %w", err)
	}
	var w wireResponse
	if err := unmarshal(header, &w); err != nil {
		return nil, fmt.Errorf("inference response: %w", err)
	}
	outputs, rest, err := fromWire(w.Outputs, bin, "output")
	if err != nil {
		return nil, fmt.Errorf("inference response: %w", err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("inference response: %d bytes of binary data after the last binary output", len(rest))
	}
	return &InferResponse{ModelName: w.ModelName, ModelVersion: w.ModelVersion, ID: w.ID, Parameters: w.Parameters, Outputs: outputs}, nil
}

// HeaderLength reads Inference-Header-Content-Length: -1 when absent.
func HeaderLength(h http.Header) (int, error) {
	v := h.Get(HeaderContentLength)
	if v == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a byte count", HeaderContentLength, v)
	}
	return n, nil
}

func split(body []byte, headerLen int) (header, bin []byte, err error) {
	if headerLen < 0 {
		return body, nil, nil
	}
	if headerLen > len(body) {
		return nil, nil, fmt.Errorf("%s is %d but the body holds %d bytes", HeaderContentLength, headerLen, len(body))
	}
	return body[:headerLen], body[headerLen:], nil
}

func unmarshal(header []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(header))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	if d.More() {
		return errors.New("JSON: more data after the object (binary data needs the " + HeaderContentLength + " header)")
	}
	// Only white space may follow the object.
	if rest := bytes.TrimSpace(header[d.InputOffset():]); len(rest) > 0 {
		return errors.New("JSON: more data after the object (binary data needs the " + HeaderContentLength + " header)")
	}
	return nil
}

func fromWire(ws []wireTensor, bin []byte, kind string) ([]Tensor, []byte, error) {
	out := make([]Tensor, 0, len(ws))
	for i, w := range ws {
		if w.Name == "" {
			return nil, nil, fmt.Errorf("%s %d has no name", kind, i)
		}
		if w.Shape == nil {
			return nil, nil, fmt.Errorf("%s %q has no shape (a scalar has shape [])", kind, w.Name)
		}
		sz := ElemSize(w.Datatype)
		if sz == 0 {
			return nil, nil, fmt.Errorf("%s %q: datatype %q is not supported (want BOOL, INT8..INT64, UINT8..UINT64, FP16, BF16, FP32 or FP64)", kind, w.Name, w.Datatype)
		}
		n, err := Elements(w.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %q: %w", kind, w.Name, err)
		}
		t := Tensor{Name: w.Name, Datatype: w.Datatype, Shape: w.Shape}
		size, isBinary, err := w.Parameters.Int64(ParamBinaryDataSize)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %q: %w", kind, w.Name, err)
		}
		for k, v := range w.Parameters {
			if k == ParamBinaryDataSize {
				continue
			}
			if t.Parameters == nil {
				t.Parameters = Parameters{}
			}
			t.Parameters[k] = v
		}
		hasJSON := len(w.Data) > 0 && string(w.Data) != "null"
		switch {
		case isBinary && hasJSON:
			return nil, nil, fmt.Errorf("%s %q has both %s and JSON data", kind, w.Name, ParamBinaryDataSize)
		case isBinary:
			if size < 0 || size > int64(len(bin)) {
				return nil, nil, fmt.Errorf("%s %q: %s is %d but %d bytes of binary data are left", kind, w.Name, ParamBinaryDataSize, size, len(bin))
			}
			if size != n*int64(sz) {
				return nil, nil, fmt.Errorf("%s %q: shape %v of %s is %d bytes, %s says %d", kind, w.Name, w.Shape, w.Datatype, n*int64(sz), ParamBinaryDataSize, size)
			}
			t.Data, t.Binary = bin[:size:size], true
			bin = bin[size:]
		case hasJSON:
			// Count first: the allocation follows the elements present, never the declared shape alone.
			count, err := scanData(w.Data, nil)
			if err != nil {
				return nil, nil, fmt.Errorf("%s %q: data: %w", kind, w.Name, err)
			}
			if count != n {
				return nil, nil, fmt.Errorf("%s %q: shape %v holds %d elements, its data %d", kind, w.Name, w.Shape, n, count)
			}
			t.Data = make([]byte, n*int64(sz))
			k := 0
			if _, err := scanData(w.Data, func(tok []byte) error {
				err := putScalar(t.Data[k*sz:(k+1)*sz], w.Datatype, tok)
				k++
				return err
			}); err != nil {
				return nil, nil, fmt.Errorf("%s %q: element %d: %w", kind, w.Name, k-1, err)
			}
		default:
			return nil, nil, fmt.Errorf("%s %q has neither data nor %s", kind, w.Name, ParamBinaryDataSize)
		}
		out = append(out, t)
	}
	return out, bin, nil
}

// scanData walks the JSON tensor data raw (a scalar, or arrays nested to any depth: the protocol allows
// the natural and the flattened form), calls f (when not nil) on each scalar token in order, and returns
// how many there are. raw has been validated as JSON by encoding/json.
func scanData(raw []byte, f func(tok []byte) error) (int64, error) {
	var count int64
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r', '[', ']', ',':
			i++
		case '"':
			return 0, errors.New("strings are not supported (only numbers and booleans)")
		case '{':
			return 0, errors.New("objects are not tensor elements")
		default:
			j := i
			for j < len(raw) && !strings.ContainsRune(" \t\n\r,]", rune(raw[j])) {
				j++
			}
			if f != nil {
				if err := f(raw[i:j]); err != nil {
					return 0, err
				}
			}
			count++
			i = j
		}
	}
	return count, nil
}

// putScalar converts one JSON scalar to datatype dt into dst (little endian).
func putScalar(dst []byte, dt string, tok []byte) error {
	s := string(tok)
	switch dt {
	case "BOOL":
		switch s {
		case "true":
			dst[0] = 1
		case "false":
			dst[0] = 0
		default:
			return fmt.Errorf("%q is not a boolean", s)
		}
		return nil
	case "FP32":
		v, err := strconv.ParseFloat(s, 32)
		if err != nil || s == "null" {
			return fmt.Errorf("%q is not an FP32 number", s)
		}
		binary.LittleEndian.PutUint32(dst, math.Float32bits(float32(v)))
		return nil
	case "FP64":
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not an FP64 number", s)
		}
		binary.LittleEndian.PutUint64(dst, math.Float64bits(v))
		return nil
	case "FP16", "BF16":
		return fmt.Errorf("%s data cannot be written in JSON; send it as binary data", dt)
	case "INT8", "INT16", "INT32", "INT64":
		v, err := strconv.ParseInt(s, 10, 8*len(dst))
		if err != nil {
			return fmt.Errorf("%q is not an %s", s, dt)
		}
		putUint(dst, uint64(v))
		return nil
	case "UINT8", "UINT16", "UINT32", "UINT64":
		v, err := strconv.ParseUint(s, 10, 8*len(dst))
		if err != nil {
			return fmt.Errorf("%q is not a %s", s, dt)
		}
		putUint(dst, v)
		return nil
	}
	return fmt.Errorf("datatype %q is not supported", dt)
}

func putUint(dst []byte, v uint64) {
	for i := range dst {
		dst[i] = byte(v >> (8 * i))
	}
}

func getUint(src []byte) uint64 {
	var v uint64
	for i := range src {
		v |= uint64(src[i]) << (8 * i)
	}
	return v
}

// appendJSONData writes the elements of t as a flat JSON array. FP32 values use the shortest text that
// reads back to the same float32, so JSON carries them bit for bit too; NaN and infinities have no JSON form.
func appendJSONData(b []byte, t Tensor) ([]byte, error) {
	sz := ElemSize(t.Datatype)
	b = append(b, '[')
	for i := 0; i+sz <= len(t.Data); i += sz {
		if i > 0 {
			b = append(b, ',')
		}
		e := t.Data[i : i+sz]
		switch t.Datatype {
		case "BOOL":
			b = strconv.AppendBool(b, e[0] != 0)
		case "FP32":
			v := float64(math.Float32frombits(uint32(getUint(e))))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("tensor %q: element %d is %v, which JSON cannot carry; use binary data", t.Name, i/sz, v)
			}
			b = strconv.AppendFloat(b, v, 'g', -1, 32)
		case "FP64":
			v := math.Float64frombits(getUint(e))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("tensor %q: element %d is %v, which JSON cannot carry; use binary data", t.Name, i/sz, v)
			}
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		case "INT8", "INT16", "INT32", "INT64":
			u := getUint(e)
			shift := 64 - 8*uint(sz)
			b = strconv.AppendInt(b, int64(u<<shift)>>shift, 10)
		case "UINT8", "UINT16", "UINT32", "UINT64":
			b = strconv.AppendUint(b, getUint(e), 10)
		default:
			return nil, fmt.Errorf("tensor %q: %s data cannot be written in JSON; use binary data", t.Name, t.Datatype)
		}
	}
	return append(b, ']'), nil
}
