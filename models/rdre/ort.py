"""A minimal ONNX Runtime runner over the C API with ctypes (no onnxruntime Python wheel exists here).

Contract: ``OrtSession(model_path, lib_path)`` loads the same ``libonnxruntime.so.1`` the Go server uses
(``build/ort``, provisioned by ``make ort``), ``run({"image": array})`` returns the model's float32 outputs
as numpy arrays, and ``metadata(key)`` reads a custom metadata entry. Indices into the ``OrtApi`` function
table come from the C header of API version 29 (ONNX Runtime 1.30); the table only ever grows, so newer
libraries keep them.
"""

from __future__ import annotations

import ctypes as C
import os
from typing import Dict, List, Optional

import numpy as np

API_VERSION = 29
REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_LIB = os.path.join(REPO_ROOT, "build", "ort", "libonnxruntime.so.1")

_IDX = dict(
    GetErrorMessage=2, CreateEnv=3, CreateSession=7, Run=9, CreateSessionOptions=10, SetIntraOpNumThreads=24,
    CreateTensorWithDataAsOrtValue=49, GetTensorMutableData=51, GetDimensionsCount=61, GetDimensions=62,
    GetTensorTypeAndShape=65, CreateCpuMemoryInfo=69, AllocatorFree=76, GetAllocatorWithDefaultOptions=78,
    ReleaseEnv=92, ReleaseStatus=93, ReleaseMemoryInfo=94, ReleaseSession=95, ReleaseValue=96,
    ReleaseTensorTypeAndShapeInfo=99, ReleaseSessionOptions=100, SessionGetModelMetadata=111,
    ModelMetadataLookupCustomMetadataMap=116, ReleaseModelMetadata=118,
)
_P = C.c_void_p


def default_lib_path() -> str:
    return os.environ.get("RDRE_ORT_LIB", DEFAULT_LIB)


class _ApiBase(C.Structure):
    _fields_ = [("GetApi", C.CFUNCTYPE(_P, C.c_uint32)), ("GetVersionString", C.CFUNCTYPE(C.c_char_p))]


class OrtError(RuntimeError):
    pass


class OrtSession:
    def __init__(self, model_path: str, lib_path: Optional[str] = None, threads: int = 1):
        lib_path = lib_path or default_lib_path()
        if not os.path.isfile(lib_path):
            raise FileNotFoundError(f"onnx runtime library {lib_path} not found (run `make ort`)")
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"onnx model {model_path} not found")
        self.lib = C.CDLL(lib_path)
        self.lib.OrtGetApiBase.restype = C.POINTER(_ApiBase)
        base = self.lib.OrtGetApiBase().contents
        self.version = base.GetVersionString().decode()
        api = base.GetApi(API_VERSION)
        if not api:
            raise OrtError(f"onnx runtime {self.version} at {lib_path} does not offer C API {API_VERSION}")
        self.table = C.cast(api, C.POINTER(_P * 128)).contents
        self._env = self._out("CreateEnv", [C.c_int, C.c_char_p], 3, b"rdre")
        opts = self._out("CreateSessionOptions", [])
        self._check(self._fn("SetIntraOpNumThreads", [_P, C.c_int])(opts, threads))
        try:
            self._sess = self._out("CreateSession", [_P, C.c_char_p, _P], self._env, model_path.encode(), opts)
        finally:
            self._fn("ReleaseSessionOptions", [_P], None)(opts)
        self._mem = self._out("CreateCpuMemoryInfo", [C.c_int, C.c_int], 1, 0)

    def _fn(self, name: str, argtypes: List, restype=_P):
        return C.CFUNCTYPE(restype, *argtypes)(self.table[_IDX[name]])

    def _check(self, status) -> None:
        if status:
            msg = self._fn("GetErrorMessage", [_P], C.c_char_p)(status)
            self._fn("ReleaseStatus", [_P], None)(status)
            raise OrtError(f"onnx runtime: {msg.decode(errors='replace')}")

    def _out(self, name: str, argtypes: List, *args):
        out = _P()
        self._check(self._fn(name, argtypes + [C.POINTER(_P)])(*args, C.byref(out)))
        return out

    def metadata(self, key: str) -> Optional[str]:
        md = self._out("SessionGetModelMetadata", [_P], self._sess)
        try:
            alloc = self._out("GetAllocatorWithDefaultOptions", [])
            val = C.c_void_p()
            fn = self._fn("ModelMetadataLookupCustomMetadataMap", [_P, _P, C.c_char_p, C.POINTER(_P)])
            self._check(fn(md, alloc, key.encode(), C.byref(val)))
            if not val:
                return None
            s = C.cast(val, C.c_char_p).value.decode()
            self._check(self._fn("AllocatorFree", [_P, _P])(alloc, val))
            return s
        finally:
            self._fn("ReleaseModelMetadata", [_P], None)(md)

    def run(self, inputs: Dict[str, np.ndarray], output_names: List[str]) -> List[np.ndarray]:
        arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs.values()]
        values = []
        try:
            for a in arrays:
                shape = (C.c_int64 * a.ndim)(*a.shape)
                fn = self._fn("CreateTensorWithDataAsOrtValue", [_P, _P, C.c_size_t, C.POINTER(C.c_int64), C.c_size_t, C.c_int, C.POINTER(_P)])
                v = _P()
                self._check(fn(self._mem, a.ctypes.data, a.nbytes, shape, a.ndim, 1, C.byref(v)))
                values.append(v)
            in_names = (C.c_char_p * len(arrays))(*[k.encode() for k in inputs])
            out_names = (C.c_char_p * len(output_names))(*[k.encode() for k in output_names])
            in_vals = (_P * len(values))(*values)
            outs = (_P * len(output_names))()
            run = self._fn("Run", [_P, _P, C.c_char_p * len(arrays), _P * len(values), C.c_size_t, C.c_char_p * len(output_names), C.c_size_t, _P * len(output_names)])
            self._check(run(self._sess, None, in_names, in_vals, len(values), out_names, len(output_names), outs))
            results = []
            for v in outs:
                try:
                    results.append(self._to_numpy(v))
                finally:
                    self._fn("ReleaseValue", [_P], None)(v)
            return results
        finally:
            for v in values:
                self._fn("ReleaseValue", [_P], None)(v)

    def _to_numpy(self, v) -> np.ndarray:
        info = self._out("GetTensorTypeAndShape", [_P], v)
        try:
            n = C.c_size_t()
            self._check(self._fn("GetDimensionsCount", [_P, C.POINTER(C.c_size_t)])(info, C.byref(n)))
            dims = (C.c_int64 * n.value)()
            self._check(self._fn("GetDimensions", [_P, C.POINTER(C.c_int64), C.c_size_t])(info, dims, n.value))
        finally:
            self._fn("ReleaseTensorTypeAndShapeInfo", [_P], None)(info)
        shape = tuple(dims)
        ptr = self._out("GetTensorMutableData", [_P], v)
        count = int(np.prod(shape)) if shape else 1
        buf = (C.c_float * count).from_address(ptr.value) if count else (C.c_float * 0)()
        return np.ctypeslib.as_array(buf).reshape(shape).copy()

    def close(self) -> None:
        if getattr(self, "_sess", None):
            self._fn("ReleaseSession", [_P], None)(self._sess)
            self._sess = None
        if getattr(self, "_mem", None):
            self._fn("ReleaseMemoryInfo", [_P], None)(self._mem)
            self._mem = None
        if getattr(self, "_env", None):
            self._fn("ReleaseEnv", [_P], None)(self._env)
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
