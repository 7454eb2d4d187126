//go:build !js

package inference

import (
	"fmt"
	"image"
	"math"

	ort "github.com/yalue/onnxruntime_go"
)

// The building blocks of Model.Predict, exported for a model that runs its graph elsewhere (package oip's
// remote model, over the Open Inference Protocol): the same contract check, metadata parsing,
// pre-processing, output check and post-processing as a local Model, so that the maps of a remote run are
// those of a local run of the same file, bit for bit, when the graph runs the same batches on the same
// ONNX Runtime. None of them needs ONNX Runtime to be initialised.
//
// They reuse the unexported functions of model.go and preprocess.go (preprocessInto, checkIO,
// parseMetadata, parallel) and the same resample calls as predictBatch; preprocess_test.go and
// exported_test.go pin them to Predict.

// TensorSpec describes one input or output of a graph as an inference server reports it.
type TensorSpec struct {
	Name string
	// Datatype is the Open Inference Protocol's name of the element type: FP32, FP64, INT64, BOOL, ...
	Datatype string
	// Shape holds the dimensions; -1 is a variable one (the batch axis).
	Shape []int64
}

// CheckContract compares a graph's inputs and outputs, described by a server, with the model contract at
// input size s, with the same messages as Open gives for a local file. probe is true when an output has
// variable spatial dimensions: a probe run must then check the maps' size, as Open does.
func CheckContract(ins, outs []TensorSpec, s int) (probe bool, err error) {
	return checkIO(specsToORT(ins), specsToORT(outs), s)
}

// ParseMetadata reads the rdre.* keys of a model's metadata (the custom metadata of its ONNX file) into an
// Info (InputSize, Mean, Std, Resize, Teacher, Category, Score, Thresholds, FormatVersion, Metadata), with
// the checks and the error messages of Open.
func ParseMetadata(md map[string]string) (Info, error) {
	info := Info{Metadata: make(map[string]string, len(md))}
	for k, v := range md {
		info.Metadata[k] = v
	}
	if err := parseMetadata(&info); err != nil {
		return Info{}, err
	}
	return info, nil
}

// PreprocessBatch computes the model input of imgs (len(imgs) x 3 x s x s) and each image's W and H, exactly
// as Predict does for one batch. offset numbers the images in error messages.
func PreprocessBatch(imgs []image.Image, s int, mean, std [3]float32, offset int) ([]float32, [][2]int, error) {
	n := len(imgs)
	per := 3 * s * s
	input := make([]float32, n*per)
	sizes := make([][2]int, n)
	err := parallel(n, func(i int) error {
		if imgs[i] == nil {
			return fmt.Errorf("predict: image %d is nil", offset+i)
		}
		w, h, err := preprocessInto(input[i*per:(i+1)*per], imgs[i], s, mean, std)
		if err != nil {
			return fmt.Errorf("predict: image %d: %w", offset+i, err)
		}
		sizes[i] = [2]int{w, h}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return input, sizes, nil
}

// CheckOutputs refuses outputs of n images at input size s that hold NaN or an infinity, with the
// ErrNonFinite error of a local run; where names the model.
func CheckOutputs(where string, maps, rdMaps, scores []float32, n, s int) error {
	ss := s * s
	if len(maps) != n*ss || len(rdMaps) != n*ss || len(scores) != n {
		return fmt.Errorf("run model %s: outputs hold %d, %d and %d values, want %d x %d x %d, %d and %d x %d x %d",
			where, len(maps), len(scores), len(rdMaps), n, s, s, n, n, s, s)
	}
	for _, o := range []struct {
		name string
		v    []float32
		per  int
	}{{OutputMap, maps, ss}, {OutputScor, scores, 1}, {OutputRD, rdMaps, ss}} {
		for i, v := range o.v {
			if v != v || math.IsInf(float64(v), 0) {
				return fmt.Errorf("run model %s: %w: output %s of image %d holds %v (at element %d); the model is broken or was exported wrongly", where, ErrNonFinite, o.name, i/o.per, v, i%o.per)
			}
		}
	}
	return nil
}

// PostprocessBatch turns the raw outputs of one batch (maps and rdMaps n x s x s, scores n) into
// Predictions at each image's own size (sizes from PreprocessBatch), exactly as Predict does.
func PostprocessBatch(maps, rdMaps, scores []float32, sizes [][2]int, s, offset int) ([]Prediction, error) {
	n := len(sizes)
	S := s
	if len(maps) != n*S*S || len(rdMaps) != n*S*S || len(scores) != n {
		return nil, fmt.Errorf("predict: outputs for %d images hold %d, %d and %d values", n, len(maps), len(rdMaps), len(scores))
	}
	preds := make([]Prediction, n)
	err := parallel(n, func(i int) error {
		w, h := sizes[i][0], sizes[i][1]
		raw := maps[i*S*S : (i+1)*S*S : (i+1)*S*S]
		mp, err := MapToImage(raw, S, w, h)
		if err != nil {
			return fmt.Errorf("predict: image %d: map: %w", offset+i, err)
		}
		rd := rdMaps[i*S*S : (i+1)*S*S : (i+1)*S*S]
		preds[i] = Prediction{Map: mp, W: w, H: h, Score: float64(scores[i]), Raw: raw, RawRD: rd, S: S}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return preds, nil
}

// specsToORT describes server-reported tensors as ONNX Runtime describes a file's, so that checkIO (and
// its messages) serve both.
func specsToORT(specs []TensorSpec) []ort.InputOutputInfo {
	out := make([]ort.InputOutputInfo, len(specs))
	for i, s := range specs {
		out[i] = ort.InputOutputInfo{Name: s.Name, OrtValueType: ort.ONNXTypeTensor, Dimensions: ort.Shape(append([]int64(nil), s.Shape...)), DataType: oipType(s.Datatype)}
	}
	return out
}

// oipType maps the protocol's datatype names to ONNX element types.
func oipType(dt string) ort.TensorElementDataType {
	switch dt {
	case "BOOL":
		return ort.TensorElementDataTypeBool
	case "UINT8":
		return ort.TensorElementDataTypeUint8
	case "UINT16":
		return ort.TensorElementDataTypeUint16
	case "UINT32":
		return ort.TensorElementDataTypeUint32
	case "UINT64":
		return ort.TensorElementDataTypeUint64
	case "INT8":
		return ort.TensorElementDataTypeInt8
	case "INT16":
		return ort.TensorElementDataTypeInt16
	case "INT32":
		return ort.TensorElementDataTypeInt32
	case "INT64":
		return ort.TensorElementDataTypeInt64
	case "FP16":
		return ort.TensorElementDataTypeFloat16
	case "BF16":
		return ort.TensorElementDataTypeBFloat16
	case "FP32":
		return ort.TensorElementDataTypeFloat
	case "FP64":
		return ort.TensorElementDataTypeDouble
	case "BYTES":
		return ort.TensorElementDataTypeString
	}
	return ort.TensorElementDataTypeUndefined
}
