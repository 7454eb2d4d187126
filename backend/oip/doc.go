//go:build !js

// Package oip speaks the Open Inference Protocol (KServe v2, the REST API of Triton Inference Server,
// KServe, Seldon MLServer, OpenVINO Model Server), both ways:
//
//   - Server serves models opened by package inference (the --model files of `rdre serve`): GET /v2
//     (server metadata), /v2/health/live, /v2/health/ready, /v2/models/NAME (model metadata),
//     /v2/models/NAME/ready and POST /v2/models/NAME/infer, each also under /v2/models/NAME/versions/1/.
//     NAME is the model file's base name without ".onnx", or a prefix of at least 12 hex digits of its
//     SHA-256. The model metadata carries the file's rdre.* metadata (and "sha256", "device",
//     "max_batch_size") as "parameters": the same JSON is the sidecar MODEL.onnx.rdre.json that
//     `rdre export-model` writes.
//   - RemoteModel is a model served by such a server (rdre, or Triton with a repository written by
//     WriteTritonRepository), usable wherever a local model is (inference.Predictor). Its contract
//     (input image N x 3 x S x S, outputs anomaly_map, score, rd_map) is checked against the endpoint's
//     model metadata with the messages of inference.Open; its pre-processing metadata comes from the
//     metadata's parameters, else from Triton's model configuration (GET .../config), else from the
//     sidecar. Pre- and post-processing run in this process with the code of a local model
//     (inference.PreprocessBatch, PostprocessBatch), and each request carries exactly the batch a local
//     model would run, so the maps equal those of a local run of the same file bit for bit when the
//     server runs each request as one batch on the same ONNX Runtime build (rdre serve does; Triton's
//     dynamic batcher may merge requests, and its ONNX Runtime is another build).
//
// Both ends use the binary tensor data extension (raw little-endian tensors after the JSON header, whose
// length the Inference-Header-Content-Length header gives; "binary_data_size" on each binary tensor) and
// also accept plain JSON tensors. The decoders never allocate by a declared size: every size is checked
// against the bytes actually received first (FuzzDecodeInferRequest checks it).
//
// The remote model balances requests round robin over several URLs of the same model, bounds the
// requests in flight per endpoint, times each request out, takes an endpoint that fails out of rotation
// (doubling its pause up to a bound), and tries it again later after checking that it still serves the
// same model; a batch is retried until an endpoint answers or a give-up delay passes, so a job survives
// the restart of an endpoint. gRPC is not implemented.
package oip
