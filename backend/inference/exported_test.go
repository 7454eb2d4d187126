//go:build !js

package inference

import (
	"errors"
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/internal/testenv"
)

// The exported steps, chained, give Predict's results bit for bit: a remote model (package oip) relies on it.
func TestExported_ChainEqualsPredict(t *testing.T) {
	if err := Init(testenv.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	m, err := Open(testenv.SmallModel(t), Options{Device: "cpu", Threads: 1, Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info := m.Info()
	var imgs []image.Image
	for i, sz := range [][2]int{{70, 50}, {33, 97}, {64, 64}} {
		img := image.NewNRGBA(image.Rect(0, 0, sz[0], sz[1]))
		for y := 0; y < sz[1]; y++ {
			for x := 0; x < sz[0]; x++ {
				img.Set(x, y, color.NRGBA{uint8(x * 7 * (i + 1)), uint8(y * 5), uint8(x ^ y), 255})
			}
		}
		imgs = append(imgs, img)
	}
	want, err := m.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	in, sizes, err := PreprocessBatch(imgs, info.InputSize, info.Mean, info.Std, 0)
	if err != nil {
		t.Fatal(err)
	}
	maps, rds, scores, err := m.RunTensor(in, len(imgs))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckOutputs("x", maps, rds, scores, len(imgs), info.InputSize); err != nil {
		t.Fatal(err)
	}
	got, err := PostprocessBatch(maps, rds, scores, sizes, info.InputSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.W != g.W || w.H != g.H || w.S != g.S || math.Float64bits(w.Score) != math.Float64bits(g.Score) {
			t.Fatalf("image %d: %+v vs %+v", i, w, g)
		}
		for _, p := range [][2][]float32{{w.Map, g.Map}, {w.RawRD, g.RawRD}, {w.Raw, g.Raw}} {
			if len(p[0]) != len(p[1]) {
				t.Fatalf("image %d: lengths %d vs %d", i, len(p[0]), len(p[1]))
			}
			for j := range p[0] {
				if math.Float32bits(p[0][j]) != math.Float32bits(p[1][j]) {
					t.Fatalf("image %d: value %d differs: %v vs %v", i, j, p[0][j], p[1][j])
				}
			}
		}
	}
}

func TestExported_CheckContractMessages(t *testing.T) {
	ok := []TensorSpec{{"image", "FP32", []int64{-1, 3, 64, 64}}}
	outs := []TensorSpec{{"anomaly_map", "FP32", []int64{-1, 1, 64, 64}}, {"score", "FP32", []int64{-1}}, {"rd_map", "FP32", []int64{-1, 1, 64, 64}}}
	if probe, err := CheckContract(ok, outs, 64); err != nil || probe {
		t.Fatalf("valid contract: probe %v, %v", probe, err)
	}
	if probe, err := CheckContract(ok, []TensorSpec{outs[0], outs[1], {"rd_map", "FP32", []int64{-1, 1, -1, -1}}}, 64); err != nil || !probe {
		t.Fatalf("variable output dims: probe %v, %v", probe, err)
	}
	_, err := CheckContract([]TensorSpec{{"image", "INT64", []int64{-1, 3, 64, 64}}}, outs[:2], 64)
	if err == nil || !strings.Contains(err.Error(), `input "image" is ONNX_TYPE_TENSOR of ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, want a float32 tensor`) || !strings.Contains(err.Error(), `output "rd_map" is missing`) {
		t.Fatalf("error: %v", err)
	}
	if _, err := ParseMetadata(map[string]string{"rdre.format_version": "1"}); err == nil || !strings.Contains(err.Error(), "missing rdre.input_size, rdre.mean, rdre.std") {
		t.Fatalf("metadata error: %v", err)
	}
	info, err := ParseMetadata(map[string]string{KeyFormatVersion: "1", KeyInputSize: "64", KeyMean: "0.5,0.5,0.5", KeyStd: "0.25,0.25,0.25", "other": "x"})
	if err != nil || info.InputSize != 64 || info.Std[2] != 0.25 || info.Metadata["other"] != "x" {
		t.Fatalf("metadata: %+v %v", info, err)
	}
	nan := float32(math.NaN())
	if err := CheckOutputs("m", make([]float32, 4), []float32{0, 0, 0, nan}, []float32{1}, 1, 2); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("NaN: %v", err)
	}
}

func TestInfo_ShortDeviceReason_OneClause(t *testing.T) {
	long := "auto: CUDA execution provider unavailable: libonnxruntime_providers_shared.so (from ONNX Runtime's GPU build) is not next to it (ONNX Runtime says: /onnxruntime_src/...cc:1988 ...)"
	if got := (Info{DeviceReason: long}).ShortDeviceReason(); got != "auto: CUDA execution provider unavailable: libonnxruntime_providers_shared.so" {
		t.Fatalf("ShortDeviceReason: %q", got)
	}
	if got := (Info{DeviceReason: "asked for cpu"}).ShortDeviceReason(); got != "asked for cpu" {
		t.Fatalf("a short reason: %q", got)
	}
}
