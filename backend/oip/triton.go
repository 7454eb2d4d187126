//go:build !js

package oip

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/rdre-studio/studio/backend/inference"
)

// TritonOptions configures an exported Triton model repository.
type TritonOptions struct {
	// Name is the model's folder and protocol name; "" means the file's base name without .onnx.
	Name string
	// MaxBatch is config.pbtxt's max_batch_size (the largest batch Triton forms or accepts); 0 means 8.
	// A client sending batches of this size reproduces a local run of --batch MaxBatch.
	MaxBatch int
	// QueueDelayMicros is the dynamic batcher's max_queue_delay_microseconds; 0 means 0 (form batches of
	// what is queued, never wait for more).
	QueueDelayMicros int
	// Kind is the instance group: "" (Triton's default: one instance per GPU, else the CPU), "cpu" or "gpu".
	Kind string
	// Instances is the instance count of the group when Kind is set; 0 means 1.
	Instances int
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// WriteTritonRepository writes DIR/NAME/config.pbtxt and DIR/NAME/1/model.onnx (a copy of model) with
// the sidecar DIR/NAME/1/model.onnx.rdre.json, for Triton Inference Server's onnxruntime backend. info is
// the opened model's (inference.Open validated it). It returns the model's folder.
func WriteTritonRepository(dir, model string, info inference.Info, opt TritonOptions) (string, error) {
	name := opt.Name
	if name == "" {
		name = ModelName(model)
	}
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return "", fmt.Errorf("model name %q: use letters, digits, '_', '-' and '.' (a folder name and a URL segment)", name)
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = inference.DefaultBatch
	}
	if opt.Instances <= 0 {
		opt.Instances = 1
	}
	switch opt.Kind {
	case "", "cpu", "gpu":
	default:
		return "", fmt.Errorf("instance kind %q: want cpu or gpu (or nothing: Triton's default)", opt.Kind)
	}
	mdir := filepath.Join(dir, name)
	vdir := filepath.Join(mdir, ModelVersion)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return "", fmt.Errorf("triton repository: %w", err)
	}
	dst := filepath.Join(vdir, "model.onnx")
	if err := copyFile(model, dst); err != nil {
		return "", fmt.Errorf("triton repository: copy model: %w", err)
	}
	if err := WriteSidecar(SidecarPath(dst), Metadata(name, info, opt.MaxBatch, "")); err != nil {
		return "", err
	}
	if err := writeAtomic(filepath.Join(mdir, "config.pbtxt"), []byte(TritonConfig(name, info, opt))); err != nil {
		return "", fmt.Errorf("triton repository: %w", err)
	}
	return mdir, nil
}

// TritonConfig is the config.pbtxt of a model: the contract's tensors without the batch axis (Triton adds
// it: max_batch_size > 0, so clients see [-1, 3, S, S]), score as dims [1] reshaped to the graph's [N], the
// dynamic batcher, and the model's metadata as string parameters (which the onnxruntime backend ignores
// and GET /v2/models/NAME/config returns, so that a client finds the pre-processing metadata there).
func TritonConfig(name string, info inference.Info, opt TritonOptions) string {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = inference.DefaultBatch
	}
	if opt.Instances <= 0 {
		opt.Instances = 1
	}
	S := info.InputSize
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `rdre export-model` for model %s (sha256 %s).\n", pbQuote(filepath.Base(info.Path)), info.SHA256)
	fmt.Fprintf(&b, "# Serve with: tritonserver --model-repository=DIR ; use with: rdre ... --model-url http://HOST:8000/v2/models/%s\n", name)
	fmt.Fprintf(&b, "name: %s\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: %d\n", pbQuote(name), opt.MaxBatch)
	fmt.Fprintf(&b, "input [\n  {\n    name: %q\n    data_type: TYPE_FP32\n    dims: [ 3, %d, %d ]\n  }\n]\n", inference.InputName, S, S)
	fmt.Fprintf(&b, "output [\n")
	fmt.Fprintf(&b, "  {\n    name: %q\n    data_type: TYPE_FP32\n    dims: [ 1, %d, %d ]\n  },\n", inference.OutputMap, S, S)
	fmt.Fprintf(&b, "  {\n    name: %q\n    data_type: TYPE_FP32\n    dims: [ 1 ]\n    reshape: { shape: [ ] }\n  },\n", inference.OutputScor)
	fmt.Fprintf(&b, "  {\n    name: %q\n    data_type: TYPE_FP32\n    dims: [ 1, %d, %d ]\n  }\n", inference.OutputRD, S, S)
	fmt.Fprintf(&b, "]\n")
	fmt.Fprintf(&b, "dynamic_batching {\n  max_queue_delay_microseconds: %d\n}\n", opt.QueueDelayMicros)
	if opt.Kind != "" {
		fmt.Fprintf(&b, "instance_group [\n  {\n    count: %d\n    kind: KIND_%s\n  }\n]\n", opt.Instances, strings.ToUpper(opt.Kind))
	}
	keys := make([]string, 0, len(info.Metadata)+1)
	for k := range info.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	param := func(k, v string) {
		fmt.Fprintf(&b, "parameters {\n  key: %s\n  value: { string_value: %s }\n}\n", pbQuote(k), pbQuote(v))
	}
	for _, k := range keys {
		param(k, info.Metadata[k])
	}
	param(ParamSHA256, info.SHA256)
	return b.String()
}

// pbQuote writes s as a protobuf text-format string: UTF-8 kept, quotes, backslashes and control bytes
// escaped (octal), which every protobuf text parser reads back.
func pbQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// WriteSidecar writes md as the metadata sidecar at path.
func WriteSidecar(path string, md ModelMetadata) error {
	raw, err := json.MarshalIndent(md, "", " ")
	if err != nil {
		return fmt.Errorf("model metadata sidecar: %w", err)
	}
	if err := writeAtomic(path, append(raw, '\n')); err != nil {
		return fmt.Errorf("model metadata sidecar: %w", err)
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func copyFile(src, dst string) error {
	if sa, err := filepath.Abs(src); err == nil {
		if da, err := filepath.Abs(dst); err == nil && sa == da {
			return nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
