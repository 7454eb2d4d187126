"""Convert Google's quantised MobileNetV2 TFLite file into a torchvision ``mobilenet_v2`` state.

Contract: ``convert(path)`` checks the file's sha256, reads the flatbuffer with the ``flatbuffers``
runtime alone (no TensorFlow), dequantises every convolution's weights and folded bias in graph order and
returns a ``state_dict`` for :class:`models.rdre.teacher.MobileNetV2TF` (BN layers become identities that
add the folded bias, classifier keeps torchvision's 1000 classes by dropping TFLite's background row).
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Tuple

import numpy as np
import torch
from flatbuffers.table import Table

TFLITE_SHA256 = "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"
TFLITE_NAME = "mobilenet_v2_1.0_224_quant.tflite"
# The built-in teacher is committed beside the code (models/teachers/, Apache-2.0, README there); the shared
# weights folder of the development machines is the fallback for checkouts from before it was committed.
BUILTIN_TFLITE = os.path.join(os.path.dirname(__file__), "..", "teachers", TFLITE_NAME)
DEFAULT_TFLITE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "weights", TFLITE_NAME)

_CONV_2D = 3
_DEPTHWISE_CONV_2D = 4
# TFLite TensorType enum values we need.
_TYPE_NUMPY = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}


def default_tflite_path() -> str:
    """$RDRE_TFLITE when set, else the committed models/teachers file, else ../shared/weights (convert checks the sha256)."""
    if os.environ.get("RDRE_TFLITE"):
        return os.path.normpath(os.environ["RDRE_TFLITE"])
    if os.path.isfile(BUILTIN_TFLITE):
        return os.path.normpath(BUILTIN_TFLITE)
    return os.path.normpath(DEFAULT_TFLITE)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _T:
    """Minimal reader over a flatbuffer table: field i lives at vtable slot 4 + 2 i."""

    def __init__(self, buf: bytes, pos: int):
        self.t = Table(buf, pos)
        self.buf = buf

    def _off(self, field: int) -> int:
        return self.t.Offset(4 + 2 * field)

    def scalar(self, field: int, flags, default=0):
        o = self._off(field)
        return self.t.Get(flags, o + self.t.Pos) if o else default

    def table(self, field: int):
        o = self._off(field)
        if not o:
            return None
        return _T(self.buf, self.t.Indirect(o + self.t.Pos))

    def vec_len(self, field: int) -> int:
        o = self._off(field)
        return self.t.VectorLen(o) if o else 0

    def vec_tables(self, field: int) -> List["_T"]:
        o = self._off(field)
        if not o:
            return []
        start = self.t.Vector(o)
        n = self.t.VectorLen(o)
        return [_T(self.buf, self.t.Indirect(start + 4 * i)) for i in range(n)]

    def vec_numpy(self, field: int, dtype) -> np.ndarray:
        o = self._off(field)
        if not o:
            return np.zeros(0, dtype=dtype)
        start = self.t.Vector(o)
        n = self.t.VectorLen(o)
        return np.frombuffer(self.buf, dtype=dtype, count=n, offset=start)


def _tensor_array(buf: bytes, tensors, buffers, idx: int, N) -> Tuple[np.ndarray, np.ndarray]:
    """Dequantised value and TFLite shape of constant tensor idx."""
    t = tensors[idx]
    shape = t.vec_numpy(0, np.int32).astype(np.int64)
    ttype = t.scalar(1, N.Int8Flags)
    bidx = t.scalar(2, N.Uint32Flags)
    data = buffers[bidx].vec_numpy(0, np.uint8)
    if ttype not in _TYPE_NUMPY:
        raise ValueError(f"tensor {idx}: unsupported TFLite type {ttype}")
    q = np.frombuffer(data.tobytes(), dtype=_TYPE_NUMPY[ttype]).reshape(shape)
    quant = t.table(4)
    if ttype == 0 or quant is None or quant.vec_len(2) == 0:
        return q.astype(np.float32), shape
    scale = quant.vec_numpy(2, np.float32).astype(np.float64)
    zero = quant.vec_numpy(3, np.int64).astype(np.float64)
    dim = quant.scalar(6, N.Int32Flags)
    if scale.size > 1:
        bshape = [1] * q.ndim
        bshape[dim] = -1
        scale = scale.reshape(bshape)
        zero = zero.reshape(bshape) if zero.size > 1 else zero
    return (scale * (q.astype(np.float64) - zero)).astype(np.float32), shape


def read_convs(path: str) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Every convolution of the graph in order as (kind, OIHW-or-O1HW weight, bias)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError(f"read tflite {path}: not a TFLite flatbuffer (identifier {buf[4:8]!r})")
    from flatbuffers import number_types as N
    from flatbuffers import encode

    root = _T(buf, encode.Get(N.UOffsetTFlags.packer_type, buf, 0))
    opcodes = root.vec_tables(1)
    subgraphs = root.vec_tables(2)
    buffers = root.vec_tables(4)
    if not subgraphs:
        raise ValueError(f"read tflite {path}: no subgraph")
    sg = subgraphs[0]
    tensors = sg.vec_tables(0)

    def builtin(op_idx: int) -> int:
        oc = opcodes[op_idx]
        code = oc.scalar(3, N.Int32Flags)
        dep = oc.scalar(0, N.Int8Flags)
        return max(code, dep)

    out = []
    for op in sg.vec_tables(3):
        code = builtin(op.scalar(0, N.Uint32Flags))
        if code not in (_CONV_2D, _DEPTHWISE_CONV_2D):
            continue
        ins = op.vec_numpy(1, np.int32)
        w, _ = _tensor_array(buf, tensors, buffers, int(ins[1]), N)
        b, _ = _tensor_array(buf, tensors, buffers, int(ins[2]), N)
        if code == _CONV_2D:
            w = np.ascontiguousarray(w.transpose(0, 3, 1, 2))  # OHWI -> OIHW
            out.append(("conv", w, b))
        else:
            w = np.ascontiguousarray(w.transpose(3, 0, 1, 2))  # 1HWO -> O1HW
            out.append(("dwconv", w, b))
    return out


def convert(path: str, check_sha: bool = True) -> Dict[str, torch.Tensor]:
    """Build the state_dict of MobileNetV2TF from the TFLite file at path."""
    from .teacher import MobileNetV2TF

    if not os.path.isfile(path):
        raise FileNotFoundError(f"convert tflite: {path} does not exist")
    if check_sha:
        got = sha256_file(path)
        if got != TFLITE_SHA256:
            raise ValueError(f"convert tflite {path}: sha256 {got} differs from the expected {TFLITE_SHA256}")
    convs = read_convs(path)
    net = MobileNetV2TF(num_classes=1000)
    targets = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(targets) + 1:
        raise ValueError(f"convert tflite {path}: {len(convs)} convolutions, want {len(targets) + 1}")
    state = net.state_dict()
    bn_of = {}
    # Each Conv2d of torchvision's mobilenet_v2 is followed by a BatchNorm2d in the same Sequential.
    names = [n for n, _ in net.named_modules()]
    for i, n in enumerate(names):
        mod = dict(net.named_modules())[n]
        if isinstance(mod, torch.nn.Conv2d):
            nxt = names[i + 1]
            bn_of[n] = nxt
    for (name, conv), (kind, w, b) in zip(targets, convs[:-1]):
        if tuple(conv.weight.shape) != w.shape:
            raise ValueError(f"convert tflite: {name} wants {tuple(conv.weight.shape)}, file has {w.shape} ({kind})")
        state[name + ".weight"] = torch.from_numpy(w.copy())
        bn = bn_of[name]
        c = w.shape[0]
        eps = dict(net.named_modules())[bn].eps
        state[bn + ".weight"] = torch.ones(c)
        state[bn + ".bias"] = torch.from_numpy(b.astype(np.float32).copy())
        state[bn + ".running_mean"] = torch.zeros(c)
        state[bn + ".running_var"] = torch.full((c,), 1.0 - eps)
    _, wc, bc = convs[-1]
    if wc.shape[0] != 1001:
        raise ValueError(f"convert tflite: classifier has {wc.shape[0]} outputs, want 1001")
    state["classifier.1.weight"] = torch.from_numpy(wc[1:, :, 0, 0].copy())
    state["classifier.1.bias"] = torch.from_numpy(bc[1:].astype(np.float32).copy())
    return state
