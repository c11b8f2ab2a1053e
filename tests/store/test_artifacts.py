"""Artifact encoding: byte-shuffled zlib blobs round-trip exactly, and blobs written before (codec zlib) still decode."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from engine.backtest.enums import TRADE_DTYPE
from engine.errors import StoreError
from engine.store.artifacts import CODEC, decode_array, encode_array


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    equity = 10_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, 5_000)))
    equity[1_000:2_000] = equity[999]  # a flat stretch (no position)
    trades = np.zeros(7, dtype=TRADE_DTYPE)
    for name in TRADE_DTYPE.names:
        trades[name] = rng.integers(0, 1_000, 7) if trades[name].dtype.kind == "i" else rng.normal(size=7)
    return [
        equity,
        rng.normal(size=(300, 3)),  # a basket's per-symbol curves
        np.asfortranarray(rng.normal(size=(40, 5))),
        rng.integers(-(2**40), 2**40, 999),
        trades,
        np.array(["BTC", "ETH", "SOL-PERP"], dtype=np.str_),
        np.array([True, False, True]),
        np.zeros(0),
        np.zeros((0, 4)),
        np.array([np.nan, np.inf, -np.inf, -0.0]),
    ]


@pytest.mark.parametrize("array", _arrays(), ids=lambda a: f"{a.dtype}{a.shape}")
def test_an_array_comes_back_bit_for_bit(array: np.ndarray) -> None:
    dtype, shape, blob = encode_array(array)
    back = decode_array(dtype, shape, blob)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == np.ascontiguousarray(array).tobytes()
    assert back.flags.writeable and back.flags.c_contiguous


def test_wide_items_are_stored_shuffled() -> None:
    """The blob inflates to the bytes grouped by position within an item, not to the raw bytes."""
    equity = np.linspace(100.0, 200.0, 64)
    dtype, _, blob = encode_array(equity)
    assert dtype == "<f8"
    assert zlib.decompress(blob) == equity.view(np.uint8).reshape(-1, 8).T.tobytes()


@pytest.mark.parametrize("array", _arrays(), ids=lambda a: f"{a.dtype}{a.shape}")
def test_a_blob_written_before_shuffling_still_decodes(array: np.ndarray) -> None:
    """Stores written by earlier versions hold plain zlib over the raw bytes, with no mark."""
    array = np.ascontiguousarray(array)
    dtype = json.dumps(array.dtype.descr) if array.dtype.names else array.dtype.str
    back = decode_array(dtype, json.dumps(list(array.shape)), zlib.compress(array.tobytes(), 1), "zlib")
    assert back.tobytes() == array.tobytes() and back.shape == array.shape


def test_object_dtypes_are_refused_both_ways() -> None:
    with pytest.raises(StoreError):
        encode_array(np.array([object()]))
    with pytest.raises(StoreError):
        decode_array("|O", "[1]", zlib.compress(b"\0" * 8), CODEC)


def test_an_unknown_codec_is_refused() -> None:
    dtype, shape, blob = encode_array(np.arange(4.0))
    with pytest.raises(StoreError, match="codec"):
        decode_array(dtype, shape, blob, "lz4")
