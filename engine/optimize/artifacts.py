"""Artifact encoding: numpy arrays as zlib over their raw bytes, with dtype and shape recorded.

Never pickle: a structured dtype is stored as its JSON field list, a plain one
as its dtype string; object dtypes are refused both ways. Workers encode (the
compression runs in parallel, off the event loop); the store only writes blobs.
"""

from __future__ import annotations

import json
import zlib

import numpy as np

from engine.errors import StoreError


def encode_array(array: np.ndarray) -> tuple[str, str, bytes]:
    """``(dtype, shape, blob)`` for a numpy array; object dtypes are refused."""
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise StoreError(f"artifact: object dtype {array.dtype} cannot be stored")
    dtype = json.dumps(array.dtype.descr) if array.dtype.names else array.dtype.str
    return dtype, json.dumps(list(array.shape)), zlib.compress(array.tobytes(), 1)


def decode_array(dtype: str, shape: str, blob: bytes) -> np.ndarray:
    """The array :func:`encode_array` encoded (a fresh, writable copy)."""
    if dtype.startswith("["):
        np_dtype = np.dtype([tuple(field) for field in json.loads(dtype)])
    else:
        np_dtype = np.dtype(dtype)
    if np_dtype.hasobject:
        raise StoreError(f"artifact: refusing object dtype {dtype}")
    raw = zlib.decompress(blob)
    return np.frombuffer(raw, dtype=np_dtype).reshape(json.loads(shape)).copy()


