"""Export an RD-RE checkpoint to one self-describing ONNX file (opset 17).

Contract: input ``image`` (N x 3 x S x S float32, normalised, N dynamic); outputs ``anomaly_map``
(N x 1 x S x S), ``score`` (N), ``rd_map`` (N x 1 x S x S); ``metadata_props`` carry the ``rdre.*`` keys
listed in models/README.md. Usage: ``python3 -m models.export --checkpoint CKPT --out model.onnx``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import io
import json
import logging
import os
import sys
import warnings
from typing import Dict

import onnx
import torch

from .rdre.model import RDRE, count_macs, count_params

log = logging.getLogger("models.export")

FORMAT_VERSION = "1"
OPSET = 17
OUTPUTS = ("anomaly_map", "score", "rd_map")


def _fix_output_shapes(m: onnx.ModelProto, size: int) -> None:
    # The tracer leaves H and W of the outputs symbolic; they are fixed by construction.
    dims = {"anomaly_map": ["N", 1, size, size], "score": ["N"], "rd_map": ["N", 1, size, size]}
    for o in m.graph.output:
        shape = o.type.tensor_type.shape
        del shape.dim[:]
        for d in dims[o.name]:
            nd = shape.dim.add()
            if isinstance(d, str):
                nd.dim_param = d
            else:
                nd.dim_value = d


def components(cfg: dict) -> dict:
    """What the network has. LDA, CAAMS-FF, the gate and the norm are parts of the cross-stage fusion, so without
    the fusion they are absent whatever the config's flags say (the flags only matter to rebuild the model)."""
    out = {k: bool(cfg.get(k, False)) for k in ("fusion", "lda", "caams", "seg", "fusion_gate", "linear_out", "fusion_norm")}
    if not out["fusion"]:
        out.update(lda=False, caams=False, fusion_gate=False, fusion_norm=False)
    return out


def metadata_for(model: RDRE, info: Dict[str, object]) -> Dict[str, str]:
    size = model.size
    md = {
        "rdre.format_version": FORMAT_VERSION,
        "rdre.input_size": str(size),
        "rdre.mean": ",".join(repr(float(v)) for v in model.teacher.mean),
        "rdre.std": ",".join(repr(float(v)) for v in model.teacher.std),
        "rdre.resize": "bilinear-antialias",
        "rdre.teacher": model.teacher.name,
        "rdre.category": str(info.get("category", "")),
        "rdre.steps_student": str(info.get("steps_student", 0)),
        "rdre.steps_seg": str(info.get("steps_seg", 0)),
        "rdre.seed": str(info.get("seed", 0)),
        "rdre.data_fingerprint": str(info.get("data_fingerprint", "")),
        "rdre.score": getattr(model, "score_spec", model.mapper.score_spec),
        "rdre.thresholds": json.dumps(info.get("thresholds", {}), sort_keys=True),
        "rdre.model_version": str(info.get("model_version", "")),
        "rdre.created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "rdre.params": str(count_params(model)),
        "rdre.gflops": "%.3f" % (2 * count_macs(model, size) / 1e9),
        "rdre.output": getattr(model, "output", "seg"),
        "rdre.components": json.dumps(components(model.config), sort_keys=True),
    }
    if info.get("selection"):
        md["rdre.output_selection"] = json.dumps(info["selection"], sort_keys=True)
    for k, v in info.get("extra", {}).items():
        md["rdre." + k] = str(v)
    return md


def export_model(model: RDRE, path: str, info: Dict[str, object]) -> Dict[str, str]:
    """Trace model (eval mode) to path; returns the metadata written."""
    model.eval()
    size = model.size
    dummy = torch.zeros(2, 3, size, size)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python int taken from a shape; all of them are static here except N.
        warnings.simplefilter("ignore")
        kwargs = {}
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            # Newer PyTorch defaults to the dynamo exporter; the TorchScript one is what this graph is tested with.
            kwargs["dynamo"] = False
        torch.onnx.export(
            model, dummy, buf, input_names=["image"], output_names=list(OUTPUTS), opset_version=OPSET,
            do_constant_folding=True, dynamic_axes={n: {0: "N"} for n in ("image",) + OUTPUTS}, **kwargs,
        )
    m = onnx.load_from_string(buf.getvalue())
    _fix_output_shapes(m, size)
    md = metadata_for(model, info)
    del m.metadata_props[:]
    for k, v in md.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "rdre-studio models.export"
    onnx.checker.check_model(m)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    log.info("exported %s (%d params, %s GFLOPs at %d)", path, int(md["rdre.params"]), md["rdre.gflops"], size)
    return md


def checkpoint_info(st: dict) -> Dict[str, object]:
    from .rdre.checkpoint import configs

    model_cfg, train_cfg = configs(st)
    cfg = dict(train_cfg)
    cfg.setdefault("teacher", model_cfg["teacher"])
    cfg.setdefault("size", model_cfg["size"])
    cfg.setdefault("seed", 0)
    fp = cfg.get("data_fingerprint", "")
    version = "%s-%s-%d-s%d+%d-seed%d-%s" % (
        cfg.get("category", ""), cfg["teacher"], cfg["size"], st["step_student"], st["step_seg"], cfg["seed"], fp[:8])
    return dict(
        category=cfg.get("category", ""), steps_student=st["step_student"], steps_seg=st["step_seg"], seed=cfg["seed"],
        data_fingerprint=fp, thresholds=st.get("thresholds", {}), model_version=version, selection=st.get("selection") or {},
    )


def export_checkpoint(ckpt: str, out: str) -> Dict[str, str]:
    """Export ckpt; where the run checked the floor (floor.json beside it), export what the record chose: the
    recipe, plain RD (baseline/checkpoint.pt), the score of one with the maps of the other, or the maps of one
    with the weighted score of both."""
    from .rdre import floor
    from .rdre.trainer import load_model

    model, st = load_model(ckpt)
    info = checkpoint_info(st)
    run_dir = os.path.dirname(os.path.abspath(ckpt))
    rec = floor.read_record(run_dir)
    if rec is None:
        return export_model(model, out, info)
    if "baseline" in (rec["score"], rec["map"]) or rec["score"] == "both":
        base_ckpt = os.path.join(run_dir, floor.BASELINE_DIR, "checkpoint.pt")
        if not os.path.isfile(base_ckpt):
            raise ValueError(f"floor record {os.path.join(run_dir, floor.RECORD)} takes an output from plain RD, but {base_ckpt} is missing")
        base, bst = load_model(base_ckpt)
        binfo = checkpoint_info(bst)
        if binfo["data_fingerprint"] != info["data_fingerprint"]:
            raise ValueError(f"floor: {base_ckpt} was trained on other images than {ckpt} (data fingerprints differ)")
    if rec["score"] == rec["map"] == "baseline":
        model, info = base, binfo
    elif rec["score"] == "both":
        w = rec["weights"]
        pair = (model, base, (w["recipe"], w["baseline"])) if rec["map"] == "recipe" else (base, model, (w["baseline"], w["recipe"]))
        model = floor.FloorModel(*pair)
        info["thresholds"] = floor.thresholds(rec, st.get("thresholds"), bst.get("thresholds"))
    elif rec["score"] != rec["map"]:
        model = floor.FloorModel(model if rec["map"] == "recipe" else base, model if rec["score"] == "recipe" else base)
        info["thresholds"] = floor.thresholds(rec, st.get("thresholds"), bst.get("thresholds"))
    info["extra"] = {"floor": json.dumps(rec, sort_keys=True)}
    log.info("%s", floor.summary(rec))
    return export_model(model, out, info)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    try:
        md = export_checkpoint(args.checkpoint, args.out)
    except (ValueError, FileNotFoundError, KeyError) as err:
        log.error("export: %s", err)
        return 1
    print(json.dumps(md, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
