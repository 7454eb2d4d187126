// Package inference runs exported RD-RE models (ONNX files) over images through ONNX Runtime.
//
// Contract:
//   - Init(libPath) loads the ONNX Runtime shared library once per process; calling it again with the same
//     path is a no-op, with another path an error (ONNX Runtime's environment is process-wide).
//     LibraryPath resolves the library from a flag, RDRE_ORT_LIB, or the folders next to the executable.
//   - Open validates a model file against the RD-RE model contract before it is used: one input `image`
//     float32 N x 3 x S x S and the outputs `anomaly_map` N x 1 x S x S, `score` N, `rd_map` N x 1 x S x S
//     (all float32), plus the metadata keys rdre.format_version, rdre.input_size (= S), rdre.mean and
//     rdre.std. A file that does not match is refused with an error that says what was expected and what
//     was found; a file that is not ONNX at all is refused as such.
//   - Model.Predict takes decoded images of any size, pre-processes them exactly as training does
//     (RGB, /255, PyTorch's antialiased bilinear resize to S x S, (x-mean)/std), runs them in batches of
//     Options.Batch and returns each map resized back to the image's own W x H with PyTorch's bilinear
//     resize (align_corners=False, no antialias), plus the model's image score.
//   - A Model is safe for concurrent use: pre- and post-processing run in the caller's goroutines, while
//     the ONNX Runtime session (one per Model) runs one batch at a time under a mutex, because a single
//     Run already uses Options.Threads intra-op threads and concurrent runs would only oversubscribe the
//     cores and multiply peak memory.
//   - Devices: "cpu"; "cuda" appends ONNX Runtime's CUDA execution provider and fails with an error that
//     names what is missing (provider library, CUDA or cuDNN libraries, a GPU); "auto" tries CUDA and falls
//     back to CPU, recording why in Info.DeviceReason. See README.md for providing the GPU build.
//
// The pre- and post-processing functions (package resample: Preprocess, ResizeBilinear, ResizeBilinearAA) are plain Go,
// build on every platform and are usable without ONNX Runtime.
package inference
