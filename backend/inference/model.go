//go:build !js

package inference

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/rdre-studio/studio/backend/resample"
)

// The model contract (models/ exports it; see DESIGN.md "Export").
const (
	InputName  = "image"
	OutputMap  = "anomaly_map"
	OutputScor = "score"
	OutputRD   = "rd_map"
)

// Metadata keys read from the ONNX file (all values are strings).
const (
	KeyFormatVersion = "rdre.format_version"
	KeyInputSize     = "rdre.input_size"
	KeyMean          = "rdre.mean"
	KeyStd           = "rdre.std"
	KeyResize        = "rdre.resize"
	KeyTeacher       = "rdre.teacher"
	KeyCategory      = "rdre.category"
	KeyScore         = "rdre.score"
	KeyThresholds    = "rdre.thresholds"
	// KeyFloor is the floor's record (protocol.TrainFloor as JSON) of a model trained with it.
	KeyFloor = "rdre.floor"
)

// FormatVersion is the rdre.format_version this package understands.
const FormatVersion = "1"

// Options chooses where and how a model runs.
type Options struct {
	// Device is "cpu", "cuda" or "auto" (CUDA when it works, else CPU); "" means "auto".
	Device string
	// Threads is ONNX Runtime's intra-op thread count on CPU; 0 lets ONNX Runtime choose (all cores).
	Threads int
	// Batch is the most images per session run; 0 means 8.
	Batch int
	// CUDADevice is the GPU index for "cuda"/"auto".
	CUDADevice int
}

// DefaultBatch is the batch size when Options.Batch is 0.
const DefaultBatch = 8

// Info describes an opened model: what the file says about itself and where it runs.
type Info struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"` // file size in bytes

	InputSize     int                `json:"input_size"`
	Mean          [3]float32         `json:"mean"`
	Std           [3]float32         `json:"std"`
	Resize        string             `json:"resize,omitempty"`
	Teacher       string             `json:"teacher,omitempty"`
	Category      string             `json:"category,omitempty"`
	Score         string             `json:"score,omitempty"`
	Thresholds    map[string]float64 `json:"thresholds,omitempty"`
	FormatVersion string             `json:"format_version"`
	// Metadata holds every custom metadata key of the file, rdre.* and others.
	Metadata map[string]string `json:"metadata"`

	// Device is the device actually used ("cpu" or "cuda"); DeviceReason says why (asked for, or why
	// CUDA was not used under "auto").
	Device       string `json:"device"`
	DeviceReason string `json:"device_reason"`
	Threads      int    `json:"threads"`
	Batch        int    `json:"batch"`
	ORTVersion   string `json:"ort_version"`

	probe bool // some output dimensions are symbolic: Open checks them with one run
}

// Prediction is the model output for one image, at the image's own resolution.
type Prediction struct {
	Map   []float32 // anomaly_map resized to W x H, row-major
	W, H  int
	Score float64 // the model's image score (computed in the graph on the S x S map)
	// Raw is anomaly_map at the model's resolution (S x S). Map is a deterministic function of it
	// (MapToImage), so a cache that keeps Raw exactly is both small and lossless.
	Raw []float32
	// RawRD is rd_map at the model's resolution (S x S); RDMap resizes it on demand, since most
	// callers (infer, evaluation jobs) never look at it and the resize is a tenth of their CPU time.
	RawRD []float32
	S     int
}

// RDMap is rd_map resized to W x H, row-major, exactly as the anomaly map is (MapToImage).
func (p Prediction) RDMap() ([]float32, error) {
	return resample.MapToImage(p.RawRD, p.S, p.W, p.H)
}

// MapToImage resizes a model-resolution map (S x S) to an image of w x h exactly as Predict does.
func MapToImage(raw []float32, s, w, h int) ([]float32, error) {
	return resample.MapToImage(raw, s, w, h)
}

// Model is an opened, validated ONNX model with one ONNX Runtime session.
type Model struct {
	info Info

	mu      sync.Mutex // serialises session runs and Close
	session *ort.DynamicAdvancedSession
}

// ErrContract is wrapped by the errors of Open for a file that is ONNX but not an RD-RE model.
var ErrContract = errors.New("model does not match the RD-RE model contract")

// ErrNotONNX is wrapped by the errors of Open for a file ONNX Runtime cannot load at all.
var ErrNotONNX = errors.New("not a loadable ONNX model")

// ErrCUDAUnavailable is wrapped when Device "cuda" cannot be used.
var ErrCUDAUnavailable = errors.New("CUDA execution provider unavailable")

// Open loads and validates a model. Init must have succeeded first.
func Open(path string, opt Options) (*Model, error) {
	if _, ok := Initialized(); !ok {
		return nil, fmt.Errorf("open model %s: onnxruntime is not initialised (call inference.Init)", path)
	}
	switch opt.Device {
	case "":
		opt.Device = "auto"
	case "auto", "cpu", "cuda":
	default:
		return nil, fmt.Errorf("open model %s: unknown device %q (want auto, cpu or cuda)", path, opt.Device)
	}
	if opt.Threads < 0 {
		return nil, fmt.Errorf("open model %s: threads must be >= 0, got %d", path, opt.Threads)
	}
	if opt.Batch < 0 {
		return nil, fmt.Errorf("open model %s: batch must be >= 0, got %d", path, opt.Batch)
	}
	if opt.Batch == 0 {
		opt.Batch = DefaultBatch
	}
	info, err := inspect(path)
	if err != nil {
		return nil, err
	}
	info.Threads, info.Batch = opt.Threads, opt.Batch
	info.ORTVersion = ort.GetVersion()

	var sess *ort.DynamicAdvancedSession
	switch opt.Device {
	case "cpu":
		sess, err = newSession(info.Path, opt, false)
		info.Device, info.DeviceReason = "cpu", "asked for cpu"
	case "cuda":
		sess, err = newSession(info.Path, opt, true)
		info.Device, info.DeviceReason = "cuda", "asked for cuda"
	case "auto":
		sess, err = newSession(info.Path, opt, true)
		info.Device, info.DeviceReason = "cuda", "auto: CUDA execution provider available"
		if err != nil && errors.Is(err, ErrCUDAUnavailable) {
			reason := err.Error()
			// One short sentence per process; the provider's own text is for whoever asks for debug logs.
			cudaFallbackOnce.Do(func() { slog.Info("inference: CUDA is not available, running on the CPU") })
			slog.Debug("inference: CUDA fallback", "model", info.Path, "reason", reason)
			sess, err = newSession(info.Path, opt, false)
			info.Device, info.DeviceReason = "cpu", "auto: "+reason
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w", path, err)
	}
	m := &Model{info: info, session: sess}
	if info.probe {
		// One zero image through the graph: a model whose maps are not S x S is refused now, with the
		// contract error, rather than failing every batch of a job later.
		S := info.InputSize
		if _, _, _, err := m.run(make([]float32, 3*S*S), 1); err != nil {
			m.Close()
			return nil, fmt.Errorf("open model %s: %w: probe run with one %dx%d image: %v", path, ErrContract, S, S, err)
		}
	}
	return m, nil
}

// inspect reads the file (hash, size), then lets ONNX Runtime parse it once to check the graph's
// inputs and outputs and read the metadata.
func inspect(path string) (Info, error) {
	var info Info
	abs, err := absPath(path)
	if err != nil {
		return info, fmt.Errorf("open model %s: %w", path, err)
	}
	info.Path = abs
	f, err := os.Open(abs)
	if err != nil {
		return info, fmt.Errorf("open model %s: %w", path, err)
	}
	// A device or a pipe (--model /dev/zero) would be read forever: only a regular file of a size ONNX can
	// have is a model.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return info, fmt.Errorf("open model %s: %w: not a regular file", path, ErrNotONNX)
	} else if st.Size() > MaxModelBytes {
		f.Close()
		return info, fmt.Errorf("open model %s: %w: %d bytes is more than the %d an ONNX file can hold", path, ErrNotONNX, st.Size(), int64(MaxModelBytes))
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return info, fmt.Errorf("open model %s: read: %w", path, err)
	}
	if n == 0 {
		return info, fmt.Errorf("open model %s: %w: the file is empty", path, ErrNotONNX)
	}
	info.SHA256, info.Size = hex.EncodeToString(h.Sum(nil)), n

	// Parsing only: no graph optimisation, one thread, so inspecting a big model stays cheap.
	so, err := ort.NewSessionOptions()
	if err != nil {
		return info, fmt.Errorf("open model %s: session options: %w", path, err)
	}
	defer so.Destroy()
	_ = so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll)
	_ = so.SetIntraOpNumThreads(1)

	ins, outs, err := ort.GetInputOutputInfoWithOptions(abs, so)
	if err != nil {
		return info, fmt.Errorf("open model %s: %w (ONNX Runtime says: %v)", path, ErrNotONNX, err)
	}
	md, err := ort.GetModelMetadataWithOptions(abs, so)
	if err != nil {
		return info, fmt.Errorf("open model %s: read metadata: %w", path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return info, fmt.Errorf("open model %s: read metadata keys: %w", path, err)
	}
	info.Metadata = make(map[string]string, len(keys))
	for _, k := range keys {
		v, _, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return info, fmt.Errorf("open model %s: read metadata %s: %w", path, k, err)
		}
		info.Metadata[k] = v
	}
	if err := parseMetadata(&info); err != nil {
		return info, fmt.Errorf("open model %s: %w: %v", path, ErrContract, err)
	}
	if info.probe, err = checkIO(ins, outs, info.InputSize); err != nil {
		return info, fmt.Errorf("open model %s: %w: %v", path, ErrContract, err)
	}
	return info, nil
}

// parseMetadata fills Info from the rdre.* keys; the four keys pre-processing needs are required.
func parseMetadata(info *Info) error {
	md := info.Metadata
	var missing []string
	for _, k := range []string{KeyFormatVersion, KeyInputSize, KeyMean, KeyStd} {
		if _, ok := md[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		found := make([]string, 0, len(md))
		for k := range md {
			found = append(found, k)
		}
		sort.Strings(found)
		return fmt.Errorf("expected metadata keys %s (string values); missing %s; found keys [%s]",
			strings.Join([]string{KeyFormatVersion, KeyInputSize, KeyMean, KeyStd}, ", "),
			strings.Join(missing, ", "), strings.Join(found, ", "))
	}
	info.FormatVersion = md[KeyFormatVersion]
	if info.FormatVersion != FormatVersion {
		return fmt.Errorf("expected %s=%q, found %q", KeyFormatVersion, FormatVersion, info.FormatVersion)
	}
	s, err := strconv.Atoi(strings.TrimSpace(md[KeyInputSize]))
	if err != nil || s < 1 || s > 8192 {
		return fmt.Errorf("expected %s to be an integer in 1..8192, found %q", KeyInputSize, md[KeyInputSize])
	}
	info.InputSize = s
	if info.Mean, err = parseTriple(md[KeyMean]); err != nil {
		return fmt.Errorf("expected %s as three comma-separated numbers, found %q: %v", KeyMean, md[KeyMean], err)
	}
	if info.Std, err = parseTriple(md[KeyStd]); err != nil {
		return fmt.Errorf("expected %s as three comma-separated numbers, found %q: %v", KeyStd, md[KeyStd], err)
	}
	for c, v := range info.Std {
		if !(v > 0) {
			return fmt.Errorf("expected %s to be positive, found %v for channel %d", KeyStd, v, c)
		}
	}
	info.Resize = md[KeyResize]
	if info.Resize != "" && info.Resize != "bilinear-antialias" {
		return fmt.Errorf("expected %s=bilinear-antialias (the only resize this server reproduces), found %q", KeyResize, info.Resize)
	}
	info.Teacher, info.Category, info.Score = md[KeyTeacher], md[KeyCategory], md[KeyScore]
	if t := md[KeyThresholds]; t != "" {
		// Threshold suggestions are advisory: a malformed value is logged, never fatal.
		if err := json.Unmarshal([]byte(t), &info.Thresholds); err != nil {
			slog.Warn("inference: ignoring malformed thresholds metadata", "model", info.Path, "value", t, "err", err)
			info.Thresholds = nil
		}
	}
	return nil
}

func parseTriple(s string) ([3]float32, error) {
	var out [3]float32
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return out, fmt.Errorf("%d values", len(parts))
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return out, err
		}
		out[i] = float32(v)
	}
	return out, nil
}

// checkIO compares the graph's inputs and outputs with the contract and lists every difference.
func checkIO(ins, outs []ort.InputOutputInfo, s int) (probe bool, err error) {
	type want struct {
		name string
		dims []int64 // -1: any (the batch dimension)
	}
	S := int64(s)
	wantIn := want{InputName, []int64{-1, 3, S, S}}
	wantOut := []want{{OutputMap, []int64{-1, 1, S, S}}, {OutputScor, []int64{-1}}, {OutputRD, []int64{-1, 1, S, S}}}
	var problems []string
	check := func(w want, got *ort.InputOutputInfo, kind string) {
		if got == nil {
			problems = append(problems, fmt.Sprintf("%s %q is missing", kind, w.name))
			return
		}
		if got.OrtValueType != ort.ONNXTypeTensor || got.DataType != ort.TensorElementDataTypeFloat {
			problems = append(problems, fmt.Sprintf("%s %q is %s of %s, want a float32 tensor", kind, w.name, got.OrtValueType, got.DataType))
			return
		}
		ok := len(got.Dimensions) == len(w.dims)
		for i := 0; ok && i < len(w.dims); i++ {
			// A symbolic dimension shows as -1 (or 0). The batch axis must be one, so that any batch
			// size can run. The input's other axes must be concrete; an output's may be symbolic
			// (PyTorch's exporter loses them through some ops), and is then checked by a probe run.
			switch {
			case w.dims[i] == -1:
				ok = got.Dimensions[i] <= 0
			case got.Dimensions[i] <= 0 && kind == "output":
				probe = true
			default:
				ok = got.Dimensions[i] == w.dims[i]
			}
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("%s %q has shape %v, want %s", kind, w.name, got.Dimensions, dimString(w.dims)))
		}
	}
	find := func(list []ort.InputOutputInfo, name string) *ort.InputOutputInfo {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
		return nil
	}
	if len(ins) != 1 {
		problems = append(problems, fmt.Sprintf("the graph has %d inputs, want exactly 1", len(ins)))
	}
	check(wantIn, find(ins, InputName), "input")
	for _, w := range wantOut {
		check(w, find(outs, w.name), "output")
	}
	if len(problems) == 0 {
		return probe, nil
	}
	return false, fmt.Errorf("expected input %q float32 [N 3 %d %d] and outputs %q [N 1 %d %d], %q [N], %q [N 1 %d %d] (S=%d from %s); found inputs %s and outputs %s: %s",
		InputName, s, s, OutputMap, s, s, OutputScor, OutputRD, s, s, s, KeyInputSize,
		ioString(ins), ioString(outs), strings.Join(problems, "; "))
}

func dimString(d []int64) string {
	parts := make([]string, len(d))
	for i, v := range d {
		if v == -1 {
			parts[i] = "N"
		} else {
			parts[i] = strconv.FormatInt(v, 10)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func ioString(list []ort.InputOutputInfo) string {
	parts := make([]string, len(list))
	for i := range list {
		parts[i] = list[i].String()
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// newSession creates the session; with cuda set it appends the CUDA provider and turns ONNX Runtime's
// loader messages into an ErrCUDAUnavailable that names what is missing.
func newSession(path string, opt Options, cuda bool) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer so.Destroy()
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, fmt.Errorf("set graph optimisation: %w", err)
	}
	if opt.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opt.Threads); err != nil {
			return nil, fmt.Errorf("set %d intra-op threads: %w", opt.Threads, err)
		}
	}
	// Idle intra-op threads spin by default. The server shares its cores with HTTP handlers, metrics
	// and other processes, so spinning threads would take CPU the busy ones need; turn it off. (An A/B
	// run on this project's loaded 2-core machine showed no throughput difference outside the noise.)
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, fmt.Errorf("disable thread spinning: %w", err)
	}
	// Inter-op parallelism only helps graphs with parallel branches run in parallel mode; the default
	// sequential mode ignores it, so keep it at 1 to not spawn idle threads.
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("set inter-op threads: %w", err)
	}
	if cuda {
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, cudaError(err)
		}
		defer co.Destroy()
		if err := co.Update(map[string]string{"device_id": strconv.Itoa(opt.CUDADevice)}); err != nil {
			return nil, cudaError(err)
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return nil, cudaError(err)
		}
	}
	s, err := ort.NewDynamicAdvancedSession(path, []string{InputName}, []string{OutputMap, OutputScor, OutputRD}, so)
	if err != nil {
		if cuda {
			return nil, cudaError(err)
		}
		return nil, fmt.Errorf("create session: %w", err)
	}
	return s, nil
}

// cudaError names what is missing from ONNX Runtime's message, which is accurate but long.
func cudaError(err error) error {
	msg := err.Error()
	var what string
	switch {
	case strings.Contains(msg, "libonnxruntime_providers_cuda"):
		what = "the CUDA provider library libonnxruntime_providers_cuda.so (from ONNX Runtime's GPU build " + ortGPUHint + ") is not next to the ONNX Runtime library or could not be loaded"
	case strings.Contains(msg, "libonnxruntime_providers_shared"):
		what = "libonnxruntime_providers_shared.so (from ONNX Runtime's GPU build " + ortGPUHint + ") is not next to the ONNX Runtime library"
	case strings.Contains(msg, "libcudart"), strings.Contains(msg, "libcublas"), strings.Contains(msg, "libcufft"), strings.Contains(msg, "libcurand"):
		what = "the CUDA runtime libraries (libcudart/libcublas, CUDA " + cudaHint + ") are not on the library path"
	case strings.Contains(msg, "libcudnn"):
		what = "cuDNN (libcudnn.so.9) is not on the library path"
	case strings.Contains(msg, "no CUDA-capable device"), strings.Contains(msg, "CUDA driver"), strings.Contains(msg, "libcuda.so"):
		what = "no usable NVIDIA GPU or driver (libcuda.so) on this machine"
	default:
		what = "ONNX Runtime could not start the CUDA execution provider"
	}
	return fmt.Errorf("%w: %s (ONNX Runtime says: %s)", ErrCUDAUnavailable, what, firstLine(msg))
}

const (
	ortGPUHint  = "onnxruntime-linux-x64-gpu 1.30.0"
	cudaHint    = "12.x"
	maxErrChars = 400
)

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > maxErrChars {
		s = s[:maxErrChars] + "..."
	}
	return s
}

// Info returns the model's description. The maps are copies.
func (m *Model) Info() Info { return m.info.Clone() }

// Clone returns i with its own copies of the maps (Metadata never nil), so a caller may change them.
func (i Info) Clone() Info {
	md := make(map[string]string, len(i.Metadata))
	for k, v := range i.Metadata {
		md[k] = v
	}
	i.Metadata = md
	if i.Thresholds != nil {
		th := make(map[string]float64, len(i.Thresholds))
		for k, v := range i.Thresholds {
			th[k] = v
		}
		i.Thresholds = th
	}
	return i
}

// Close releases the session; a closed Model returns errors from Predict.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session == nil {
		return nil
	}
	err := m.session.Destroy()
	m.session = nil
	if err != nil {
		return fmt.Errorf("close model %s: %w", m.info.Path, err)
	}
	return nil
}

// Predict runs the model over images of any sizes, in batches of Info().Batch, and returns one
// Prediction per image in order.
func (m *Model) Predict(imgs []image.Image) ([]Prediction, error) {
	out := make([]Prediction, 0, len(imgs))
	b := m.info.Batch
	for lo := 0; lo < len(imgs); lo += b {
		hi := min(lo+b, len(imgs))
		ps, err := m.predictBatch(imgs[lo:hi], lo)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// parallel runs f(i) for i in [0, n) on up to GOMAXPROCS goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := 0; i < n; i++ {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

func (m *Model) predictBatch(imgs []image.Image, offset int) ([]Prediction, error) {
	n := len(imgs)
	S := m.info.InputSize
	per := 3 * S * S
	input := make([]float32, n*per)
	sizes := make([][2]int, n)
	err := parallel(n, func(i int) error {
		if imgs[i] == nil {
			return fmt.Errorf("predict: image %d is nil", offset+i)
		}
		w, h, err := preprocessInto(input[i*per:(i+1)*per], imgs[i], S, m.info.Mean, m.info.Std)
		if err != nil {
			return fmt.Errorf("predict: image %d: %w", offset+i, err)
		}
		sizes[i] = [2]int{w, h}
		return nil
	})
	if err != nil {
		return nil, err
	}
	maps, rds, scores, err := m.run(input, n)
	if err != nil {
		return nil, err
	}
	// One post-processing for local and remote models (exported.go), so their maps stay bit-identical.
	return PostprocessBatch(maps, rds, scores, sizes, S, offset)
}

// RunTensor runs the session on an already pre-processed input (n x 3 x S x S) and returns the raw
// S x S maps and scores: for parity tests and benchmarks that separate pre-processing from the graph.
func (m *Model) RunTensor(input []float32, n int) (maps, rdMaps, scores []float32, err error) {
	S := m.info.InputSize
	if n < 1 || len(input) != n*3*S*S {
		return nil, nil, nil, fmt.Errorf("run model %s: input has %d values, want %d x 3 x %d x %d", m.info.Path, len(input), n, S, S)
	}
	return m.run(input, n)
}

func (m *Model) run(input []float32, n int) (maps, rdMaps, scores []float32, err error) {
	S := int64(m.info.InputSize)
	in, err := ort.NewTensor(ort.NewShape(int64(n), 3, S, S), input)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("run model %s: input tensor: %w", m.info.Path, err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil, nil, nil}
	m.mu.Lock()
	if m.session == nil {
		m.mu.Unlock()
		return nil, nil, nil, fmt.Errorf("run model %s: model is closed", m.info.Path)
	}
	err = m.session.Run([]ort.Value{in}, outs)
	m.mu.Unlock()
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("run model %s on %d images: %w", m.info.Path, n, err)
	}
	// The declared shapes were checked at Open, but symbolic dimensions could still hide a graph that
	// produces something else; check what came out before indexing it.
	get := func(v ort.Value, name string, want ort.Shape) ([]float32, error) {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("run model %s: output %s is not a float32 tensor", m.info.Path, name)
		}
		if !t.GetShape().Equals(want) {
			return nil, fmt.Errorf("run model %s: output %s has shape %v, want %v", m.info.Path, name, t.GetShape(), want)
		}
		return append([]float32(nil), t.GetData()...), nil
	}
	if maps, err = get(outs[0], OutputMap, ort.NewShape(int64(n), 1, S, S)); err != nil {
		return nil, nil, nil, err
	}
	if scores, err = get(outs[1], OutputScor, ort.NewShape(int64(n))); err != nil {
		return nil, nil, nil, err
	}
	if rdMaps, err = get(outs[2], OutputRD, ort.NewShape(int64(n), 1, S, S)); err != nil {
		return nil, nil, nil, err
	}
	// A NaN would sort anywhere in the metrics and show as a blank heatmap: say so where it appears.
	for _, o := range []struct {
		name string
		v    []float32
		per  int
	}{{OutputMap, maps, int(S * S)}, {OutputScor, scores, 1}, {OutputRD, rdMaps, int(S * S)}} {
		for i, v := range o.v {
			if v != v || math.IsInf(float64(v), 0) {
				return nil, nil, nil, fmt.Errorf("run model %s: %w: output %s of image %d holds %v (at element %d); the model is broken or was exported wrongly", m.info.Path, ErrNonFinite, o.name, i/o.per, v, i%o.per)
			}
		}
	}
	return maps, rdMaps, scores, nil
}

// MaxModelBytes is the largest model file accepted: protobuf, ONNX's container, cannot exceed 2 GiB.
const MaxModelBytes = 2 << 30

// ErrNonFinite is wrapped when a model outputs NaN or an infinity.
var ErrNonFinite = errors.New("model output is not finite")

var cudaFallbackOnce sync.Once

func absPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty model path")
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return "", fmt.Errorf("%s is a directory, want an .onnx file", p)
	}
	return filepath.Abs(p)
}

// ShortDeviceReason is the first clause of DeviceReason, for a one-line log or a command's summary:
// ONNX Runtime's own text (file paths, source lines) stays in DeviceReason for the debug level.
func (i Info) ShortDeviceReason() string {
	r := i.DeviceReason
	if k := strings.Index(r, " ("); k > 0 {
		r = r[:k]
	}
	if len(r) > 100 {
		r = r[:100] + "…"
	}
	return r
}
