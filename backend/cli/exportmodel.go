//go:build !js

package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/oip"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{Name: "export-model", Summary: "write a model as a Triton Inference Server repository, its metadata sidecar, or a copy with calibrated thresholds", Run: runExportModel})
}

func runExportModel(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export-model", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (required; checked against the model contract first)")
	triton := fs.String("triton", "", "Triton model repository folder: writes DIR/NAME/config.pbtxt, DIR/NAME/1/model.onnx and its sidecar DIR/NAME/1/model.onnx.rdre.json")
	sidecar := fs.Bool("sidecar", false, "write the metadata sidecar MODEL.onnx.rdre.json next to --model (for servers that cannot carry the model's metadata)")
	name := fs.String("name", "", "--triton: the model's name in the repository and in URLs (default: the file's base name without .onnx)")
	maxBatch := fs.Int("max-batch", inference.DefaultBatch, "--triton: max_batch_size, the largest batch Triton runs (a client's --batch should not exceed it; equal batches reproduce a local run)")
	queueDelay := fs.Int("queue-delay-us", 0, "--triton: the dynamic batcher's max_queue_delay_microseconds")
	kind := fs.String("instance-kind", "", "--triton: instance group kind, cpu or gpu (default: Triton's choice, the GPUs when there are any)")
	instances := fs.Int("instances", 1, "--triton: instances of the model with --instance-kind")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so.1 (default $"+inference.EnvLibrary+", then next to the binary)")
	thresholds := fs.String("thresholds", "", "a thresholds file of 'rdre calibrate': write its thresholds (pixel_normal, image_normal) and provenance into the model's metadata, in a copy at --out")
	out := fs.String("out", "", "--thresholds: the ONNX file to write (graph and weights unchanged)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre export-model --model FILE.onnx (--triton DIR [--name NAME] [--max-batch 8] [--instance-kind cpu|gpu] | --sidecar | --thresholds FILE --out NEW.onnx)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *model == "" || (*triton == "" && !*sidecar && *thresholds == "") || (*thresholds == "") != (*out == "") || fs.NArg() > 0 || *maxBatch < 1 || *instances < 1 || *queueDelay < 0 {
		fs.Usage()
		return 2
	}
	if *thresholds != "" {
		// The calibrated copy is written first, so that --triton and --sidecar export the model with it.
		if err := writeCalibrated(*model, *thresholds, *out); err != nil {
			fmt.Fprintf(stderr, "export-model: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "export-model: wrote %s with the thresholds of %s\n", *out, *thresholds)
		*model = *out
	}
	lib, err := inference.LibraryPath(*ortLib)
	if err == nil {
		err = inference.Init(lib)
	}
	if err != nil {
		fmt.Fprintf(stderr, "export-model: %v\n", err)
		return 1
	}
	// Open checks the file against the contract and reads its metadata: nothing invalid is exported.
	m, err := inference.Open(*model, inference.Options{Device: "cpu", Threads: 1, Batch: 1})
	if err != nil {
		fmt.Fprintf(stderr, "export-model: %v\n", err)
		return 1
	}
	info := m.Info()
	m.Close()
	if *sidecar {
		p := oip.SidecarPath(*model)
		if err := oip.WriteSidecar(p, oip.Metadata(oip.ModelName(*model), info, 0, "")); err != nil {
			fmt.Fprintf(stderr, "export-model: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "export-model: wrote %s\n", p)
	}
	if *triton != "" {
		dir, err := oip.WriteTritonRepository(*triton, *model, info, oip.TritonOptions{Name: *name, MaxBatch: *maxBatch, QueueDelayMicros: *queueDelay, Kind: *kind, Instances: *instances})
		if err != nil {
			fmt.Fprintf(stderr, "export-model: %v\n", err)
			return 1
		}
		abs, _ := filepath.Abs(*triton)
		n := filepath.Base(dir)
		fmt.Fprintf(stdout, "export-model: wrote the Triton model %s in %s (config.pbtxt, %s/model.onnx, %s/model.onnx.rdre.json)\n", n, dir, oip.ModelVersion, oip.ModelVersion)
		fmt.Fprintf(stdout, "serve it:  docker run --rm --gpus all -p 8000:8000 -v %s:/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models\n", abs)
		fmt.Fprintf(stdout, "use it:    rdre serve --data DATA --model-url http://HOST:8000/v2/models/%s (see docs/remote-inference.md)\n", n)
	}
	return 0
}

// writeCalibrated copies model to out with the thresholds of a `rdre calibrate` file in its metadata.
func writeCalibrated(model, thresholdsPath, out string) error {
	f, err := loadThresholds(thresholdsPath)
	if err != nil {
		return err
	}
	th := map[string]float64{}
	if f.Pixel != nil {
		th[protocol.ThresholdPixelNormal] = f.Pixel.Threshold
	}
	if f.Image != nil {
		th[protocol.ThresholdImageNormal] = f.Image.Threshold
	}
	raw, err := os.ReadFile(model)
	if err != nil {
		return fmt.Errorf("read model %s: %w", model, err)
	}
	raw, err = inference.WithThresholds(raw, th, f)
	if err != nil {
		return fmt.Errorf("model %s: %w", model, err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
