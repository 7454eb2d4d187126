"""PyTorch side of `rdre bench`: times the RD-RE network in PyTorch on CPU so the Go/ONNX Runtime numbers
have a reference measured on the same machine in the same run.

    /usr/bin/python3 models/bench_torch.py --onnx MODEL.onnx (--checkpoint CKPT | --random-weights)
        [--threads N] [--batches 1,2,4,8] [--seconds 2] [--warmup 2]

An ONNX graph cannot be turned back into a PyTorch module, so the network is rebuilt from the code in
models/rdre: from a checkpoint (a pickled nn.Module, or a dict with "config" = RDRE.config and
"state_dict"/"model"), or, with --random-weights, from the ONNX metadata (rdre.teacher,
rdre.input_size, rdre.score) with random weights. Speed does not depend on the weight values, but the
random build only matches the ONNX graph when that was exported from the default RD-RE configuration;
the output says which one was timed.

Prints one JSON object on stdout: {"status": "ok", "weights": ..., "p50_ms", "p95_ms" (batch 1),
"throughput": {batch: images/s}, "best_batch", "best_ips", "peak_rss_mb", "torch", "threads"} or
{"status": "skipped", "reason": ...}; exit status 0 in both cases, 1 on a real error.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, so `models.rdre` imports


def onnx_metadata(path: str) -> dict:
    import onnx

    m = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def build_from_checkpoint(path: str):
    """The trained model of a training checkpoint (models.train's format), or a pickled nn.Module."""
    import torch

    from models.rdre.trainer import load_model

    ck = torch.load(path, map_location="cpu")
    if isinstance(ck, torch.nn.Module):
        return ck
    model, _ = load_model(path)
    return model


def build_random(meta: dict):
    from models.rdre.model import RDRE
    from models.rdre.teacher import build_teacher

    size = int(meta.get("rdre.input_size", "256"))
    kw = {"size": size}
    if meta.get("rdre.score"):
        kw["score"] = meta["rdre.score"]
    return RDRE(build_teacher(meta.get("rdre.teacher", "mobilenet_v2")), **kw), size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", required=True, help="the ONNX model being benchmarked (metadata source)")
    ap.add_argument("--checkpoint", default="", help="PyTorch checkpoint of the same model")
    ap.add_argument("--random-weights", action="store_true", help="build the architecture from the ONNX metadata")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch default)")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per batch size")
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args(argv)

    if not a.checkpoint and not a.random_weights:
        print(json.dumps({"status": "skipped", "reason": "no checkpoint given (and --random-weights not asked for)"}))
        return 0
    import torch

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    meta = onnx_metadata(a.onnx)
    size = int(meta.get("rdre.input_size", "256"))
    if a.checkpoint:
        model, weights = build_from_checkpoint(a.checkpoint), "checkpoint " + a.checkpoint
    else:
        model, size = build_random(meta)
        weights = "random (architecture from ONNX metadata: teacher %s, size %d)" % (meta.get("rdre.teacher", "?"), size)
    model.eval()
    batches = sorted({int(b) for b in a.batches.split(",") if b.strip()})

    def run(n: int, x):
        with torch.inference_mode():
            model(x)

    result = {"status": "ok", "weights": weights, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "size": size, "throughput": {}}
    gen = torch.Generator().manual_seed(0)
    for b in batches:
        x = torch.randn(b, 3, size, size, generator=gen)
        for _ in range(a.warmup):
            run(b, x)
        times = []
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            run(b, x)
            times.append(time.perf_counter() - t0)
            # At least 5 runs for percentiles, then stop at the time budget.
            if len(times) >= 5 and time.perf_counter() - start >= a.seconds:
                break
        result["throughput"][str(b)] = b * len(times) / sum(times)
        if b == 1:
            times.sort()
            result["p50_ms"] = 1000 * times[len(times) // 2]
            result["p95_ms"] = 1000 * times[min(len(times) - 1, int(0.95 * len(times)))]
            result["runs_batch1"] = len(times)
    best = max(result["throughput"], key=lambda k: result["throughput"][k])
    result["best_batch"], result["best_ips"] = int(best), result["throughput"][best]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as err:  # a clear one-line error for the Go side, not a bare traceback
        print(f"bench_torch: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
