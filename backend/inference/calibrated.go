//go:build !js

package inference

import (
	"encoding/json"
	"fmt"

	"github.com/rdre-studio/studio/backend/onnxmeta"
)

// KeyCalibration is the metadata key of the provenance of a model's normal-data thresholds (JSON: the
// dataset, split, images, methods and date of the calibration).
const KeyCalibration = "rdre.calibration"

// WithThresholds returns the ONNX file raw with thresholds merged into its rdre.thresholds metadata
// (keys of th replace the file's, the others stay) and provenance, when given, as rdre.calibration.
// Graph and weights are copied byte for byte (package onnxmeta).
func WithThresholds(raw []byte, th map[string]float64, provenance any) ([]byte, error) {
	md, err := onnxmeta.Read(raw)
	if err != nil {
		return nil, fmt.Errorf("model metadata: %w", err)
	}
	merged := map[string]float64{}
	if s := md[KeyThresholds]; s != "" {
		if err := json.Unmarshal([]byte(s), &merged); err != nil {
			return nil, fmt.Errorf("model metadata %s: %w", KeyThresholds, err)
		}
	}
	for k, v := range th {
		merged[k] = v
	}
	ts, err := json.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("encode thresholds: %w", err)
	}
	kv := map[string]string{KeyThresholds: string(ts)}
	if provenance != nil {
		ps, err := json.Marshal(provenance)
		if err != nil {
			return nil, fmt.Errorf("encode calibration provenance: %w", err)
		}
		kv[KeyCalibration] = string(ps)
	}
	return onnxmeta.Set(raw, kv)
}
