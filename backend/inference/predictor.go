//go:build !js

package inference

import "image"

// Predictor is what evaluation needs of a model: a local *Model (ONNX Runtime in this process) or a
// remote one (package oip: a model served over the Open Inference Protocol). Both pre- and post-process
// with the same code, so their Predictions are interchangeable.
type Predictor interface {
	// Info describes the model. For a remote model Path is its URL, Device is "remote", and Batch is the
	// number of images one Predict call should carry to keep every endpoint busy.
	Info() Info
	// Predict runs the model over images of any size and returns one Prediction per image, in order.
	Predict(imgs []image.Image) ([]Prediction, error)
	// RunTensor runs the graph on a pre-processed input (n x 3 x S x S) and returns the raw outputs.
	RunTensor(input []float32, n int) (maps, rdMaps, scores []float32, err error)
	// Close releases the model; later calls fail.
	Close() error
}

var _ Predictor = (*Model)(nil)
