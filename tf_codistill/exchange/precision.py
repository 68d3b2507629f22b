"""Storage precision for published teacher weights.

Teachers need no high precision (Anil et al. 2018), so a group may publish its weights in
fewer bytes and every peer reads less. Decoding always yields float32 numpy arrays, so the
teacher's compute dtype is independent of the storage precision.

Precisions:
  float32   lossless.
  bfloat16  float32's range, 8 significant bits: relative error <= 2**-8.
  float16   11 significant bits (relative error <= 2**-11) but |x| must stay <= 65504;
            larger weights are refused (use bfloat16 or int8 instead).
  int8      symmetric quantization, q = round(x / scale) in [-127, 127], error <= scale / 2
            per element. Tensors of rank >= 2 get one float32 scale per output channel (last
            axis), scale = max|x| over the other axes / 127; scalars and 1-D tensors (biases,
            norms) get one per-tensor scale, since a per-element scale would save nothing.
"""
import dataclasses
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

_STORAGE_DTYPES = {
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(tf.bfloat16.as_numpy_dtype),
    "float16": np.dtype(np.float16),
    "int8": np.dtype(np.int8),
}
PRECISIONS = tuple(_STORAGE_DTYPES)
_INT8_MAX = 127.0
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclasses.dataclass(frozen=True)
class EncodedTensor:
    """One weight tensor as stored: `values` in the storage dtype, `scale` for int8 only."""
    values: np.ndarray
    scale: Optional[np.ndarray] = None

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + (0 if self.scale is None else self.scale.nbytes)


def storage_dtype(precision: str) -> np.dtype:
    """The numpy dtype that holds weights stored at `precision`."""
    check_precision(precision)
    return _STORAGE_DTYPES[precision]


def check_precision(precision: str) -> None:
    """Raises ValueError naming the valid choices if `precision` is unknown."""
    if precision not in _STORAGE_DTYPES:
        raise ValueError(f"Unknown teacher weight precision {precision!r}; "
                         f"choose one of {', '.join(PRECISIONS)}.")


def encode_weights(arrays: Sequence, precision: str) -> list[EncodedTensor]:
    """Encodes float arrays (numpy, tf.Tensor or tf.Variable) for storage at `precision`."""
    check_precision(precision)
    return [_encode_one(_as_float32(a, i), precision, i) for i, a in enumerate(arrays)]


def decode_weights(encoded: Sequence[EncodedTensor], precision: str) -> list[np.ndarray]:
    """Inverse of `encode_weights`: float32 numpy arrays."""
    dtype = storage_dtype(precision)
    out = []
    for i, tensor in enumerate(encoded):
        if tensor.values.dtype != dtype:
            raise ValueError(f"Tensor {i} is stored as {tensor.values.dtype}, "
                             f"but precision {precision!r} stores {dtype}.")
        out.append(_decode_one(tensor, precision, i))
    return out


def _as_float32(array, index: int) -> np.ndarray:
    value = np.asarray(array.numpy() if hasattr(array, "numpy") else array)
    if not np.issubdtype(value.dtype, np.floating) and value.dtype != _STORAGE_DTYPES["bfloat16"]:
        raise ValueError(f"Tensor {index} has dtype {value.dtype}; only float weights "
                         "can be published as teacher weights.")
    value = value.astype(np.float32, copy=False)
    if not np.all(np.isfinite(value)):
        raise ValueError(f"Tensor {index} holds NaN or Inf; refusing to publish it.")
    return value


def _encode_one(value: np.ndarray, precision: str, index: int) -> EncodedTensor:
    if precision == "int8":
        return _quantize_int8(value)
    if precision == "float16" and value.size and np.abs(value).max() > _FLOAT16_MAX:
        raise ValueError(f"Tensor {index} has |x| up to {np.abs(value).max():.4g}, beyond "
                         f"float16's {_FLOAT16_MAX:.0f}; publish it as bfloat16 or int8.")
    return EncodedTensor(value.astype(_STORAGE_DTYPES[precision], copy=False))


def _decode_one(tensor: EncodedTensor, precision: str, index: int) -> np.ndarray:
    values = tensor.values.astype(np.float32, copy=False)
    if precision != "int8":
        return values
    if tensor.scale is None:
        raise ValueError(f"Tensor {index} is int8 but has no scale.")
    return values * tensor.scale.astype(np.float32)


def int8_scale(value: np.ndarray) -> np.ndarray:
    """Symmetric int8 scale: per output channel (last axis) for rank >= 2, else per tensor."""
    magnitude = np.abs(value)
    if value.ndim >= 2:
        max_abs = magnitude.max(axis=tuple(range(value.ndim - 1)))
    else:
        max_abs = np.asarray(magnitude.max() if value.size else 0.0)
    # An all-zero channel gets scale 1 so that decoding stays exact (0 * 1) without 0/0.
    # A scale is never below the smallest normal float32: tiny (subnormal) weights would
    # otherwise get a scale that underflows to 0 and decode to 0 whatever they were.
    scale = np.maximum(max_abs / _INT8_MAX, np.finfo(np.float32).tiny)
    return np.where(max_abs > 0, scale, 1.0).astype(np.float32)


def _quantize_int8(value: np.ndarray) -> EncodedTensor:
    scale = int8_scale(value)
    quantized = np.clip(np.rint(value / scale), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    return EncodedTensor(quantized, scale)
