"""Encode one tensor in the smallest of four layouts, bit-exactly.

The codec works on the tensor's *bit patterns* (float32 viewed as uint32...), so decoding
returns exactly the stored bits, -0.0 and NaN payloads included. A position is a non-zero
when its bit pattern is not all zeros; the codebook is the set of distinct non-zero bit
patterns (at most ``MAX_CODEBOOK``), which is what weight sharing leaves behind: k = 2**b
centroids per layer (Han et al. 2016, s. 3). Layouts, payload in order:

- ``raw``:             numel values;
- ``sparse_raw``:      gap stream (see :mod:`.sparse`), nnz values;
- ``codebook``:        k codebook values, index stream of numel symbols;
- ``sparse_codebook``: k codebook values, gap stream, index stream of nnz symbols.

Values are stored as float16 when every value of a float32 tensor survives the round trip
through float16 bit for bit (biases rounded by ``quant.kmeans``), else in the tensor's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from torchslim.codec import sparse, streams
from torchslim.codec.bitio import CorruptError, Reader

MAX_CODEBOOK = 4096
AUTO_INDEX_BITS = tuple(range(2, 9))
_UINT = {1: (torch.uint8, "<u1"), 2: (torch.int16, "<u2"), 4: (torch.int32, "<u4"), 8: (torch.int64, "<u8")}
_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool)}


def dtype_from_name(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise CorruptError(f"unsupported dtype {name!r}")
    return _DTYPES[name]


def to_bits(t: torch.Tensor) -> np.ndarray:
    """Flat bit patterns of ``t`` as little-endian unsigned ints of the same width."""
    view, np_dtype = _UINT[t.element_size()]
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(view).numpy().view(np_dtype.replace("<", "="))


def from_bits(bits: np.ndarray, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    """Tensor of ``dtype`` and ``shape`` whose elements have the bit patterns ``bits``."""
    size = torch.empty(0, dtype=dtype).element_size()
    signed = np.asarray(bits).astype(f"<u{size}", copy=False).view(f"<i{size}").astype(f"=i{size}")
    return torch.from_numpy(signed).view(dtype).reshape(shape)


def _store_dtype(t: torch.Tensor, values: np.ndarray) -> torch.dtype:
    """float16 when every value of a float32 tensor is exactly a float16, else t.dtype."""
    if t.dtype != torch.float32 or values.size == 0:
        return t.dtype
    as32 = from_bits(values, torch.float32, [values.size])
    back = as32.half().float()
    return torch.float16 if np.array_equal(to_bits(back), values) else t.dtype


def _values_bytes(values: np.ndarray, src: torch.dtype, store: torch.dtype) -> bytes:
    t = from_bits(values, src, [values.size]).to(store)
    return to_bits(t).astype(_UINT[t.element_size()][1]).tobytes()


def _read_values(reader: Reader, count: int, src: torch.dtype, store: torch.dtype) -> np.ndarray:
    size = torch.empty(0, dtype=store).element_size()
    raw = np.frombuffer(reader.take(count * size), dtype=_UINT[size][1])
    return to_bits(from_bits(raw, store, [count]).to(src))


@dataclass
class TensorStats:
    """What the per-layer table reports for one tensor (sizes in bytes)."""

    name: str
    ndim: int
    numel: int
    nnz: int
    codebook_size: int | None
    index_bits: int | None
    layout: str
    store: str
    original_bytes: int
    compressed_bytes: int
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bits(self) -> int | None:
        return None if self.codebook_size is None else max(1, math.ceil(math.log2(self.codebook_size)))


def encode_tensor(name: str, t: torch.Tensor, coder: streams.Coder = "auto",
                  index_bits: int | None = None, allow_sparse: bool = True) -> tuple[dict[str, Any], bytes, TensorStats]:
    """(header entry, payload, stats) for ``t`` in its smallest layout."""
    bits = to_bits(t)
    positions = np.flatnonzero(bits)
    nonzero = bits[positions]
    store = _store_dtype(t, nonzero)
    item = torch.empty(0, dtype=store).element_size()
    uniques, inverse = np.unique(nonzero, return_inverse=True)
    k = int(uniques.size)
    candidates: dict[str, tuple[float, dict[str, Any]]] = {"raw": (8 * bits.size * _store_item(t, bits), {})}
    widths = (index_bits,) if index_bits else AUTO_INDEX_BITS
    if allow_sparse and positions.size < bits.size:
        w_best = min(widths, key=lambda w: _cost(sparse.to_gaps(positions, w), 1 << w, coder))
        gap_cost = _cost(sparse.to_gaps(positions, w_best), 1 << w_best, coder)
        candidates["sparse_raw"] = (gap_cost + 8 * item * positions.size, {"index_bits": w_best})
        if 0 < k <= MAX_CODEBOOK:
            candidates["sparse_codebook"] = (gap_cost + 8 * item * k + _cost(inverse, k, coder),
                                             {"index_bits": w_best})
    all_uniques, all_inverse = np.unique(bits, return_inverse=True)
    if 0 < all_uniques.size <= MAX_CODEBOOK:
        dense_store = _store_dtype(t, all_uniques)
        dense_item = torch.empty(0, dtype=dense_store).element_size()
        candidates["codebook"] = (8 * dense_item * all_uniques.size + _cost(all_inverse, all_uniques.size, coder), {})
    layout = min(candidates, key=lambda key: candidates[key][0])
    extra = candidates[layout][1]
    entry: dict[str, Any] = {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                             "layout": layout}
    stream_stats: dict[str, dict[str, Any]] = {}
    if layout == "raw":
        store = _store_dtype(t, bits)
        payload = _values_bytes(bits, t.dtype, store)
    elif layout == "codebook":
        store = _store_dtype(t, all_uniques)
        values, vstats = streams.encode_stream(all_inverse, all_uniques.size, coder)
        payload = _values_bytes(all_uniques, t.dtype, store) + values
        stream_stats["weights"] = vstats.__dict__
        entry["k"] = int(all_uniques.size)
        k = int(all_uniques.size)
    else:
        w = extra["index_bits"]
        gaps, gstats = streams.encode_stream(sparse.to_gaps(positions, w), 1 << w, coder)
        stream_stats["index"] = gstats.__dict__
        entry.update(index_bits=w, nnz=int(positions.size))
        if layout == "sparse_raw":
            payload = gaps + _values_bytes(nonzero, t.dtype, store)
        else:
            values, vstats = streams.encode_stream(inverse, k, coder)
            stream_stats["weights"] = vstats.__dict__
            payload = _values_bytes(uniques, t.dtype, store) + gaps + values
            entry["k"] = k
    entry["store"] = str(store).removeprefix("torch.")
    entry["bytes"] = len(payload)
    stats = TensorStats(name, t.dim(), int(bits.size), int(positions.size), entry.get("k"), entry.get("index_bits"), layout,
                        entry["store"], int(bits.size) * t.element_size(), len(payload), stream_stats)
    # Defaults are left out of the header (float32 dtype; store dtype = dtype): it is part of the file size.
    if entry["store"] == entry["dtype"]:
        del entry["store"]
    if entry["dtype"] == "float32":
        del entry["dtype"]
    return entry, payload, stats


def _store_item(t: torch.Tensor, bits: np.ndarray) -> int:
    return torch.empty(0, dtype=_store_dtype(t, bits)).element_size()


def _cost(symbols: np.ndarray, alphabet: int, coder: streams.Coder) -> int:
    chosen, _, stats = streams.plan(symbols, alphabet, coder)
    return getattr(stats, f"{chosen}_bits")


def decode_tensor(entry: dict[str, Any], payload: bytes) -> torch.Tensor:
    """Inverse of :func:`encode_tensor`; raises CorruptError on any inconsistency."""
    dtype = dtype_from_name(entry.get("dtype", "float32"))
    store = dtype_from_name(entry.get("store", entry.get("dtype", "float32")))
    shape = [int(s) for s in entry["shape"]]
    if any(s < 0 for s in shape):
        raise CorruptError("negative dimension")
    numel = math.prod(shape)
    reader = Reader(payload)
    layout = entry["layout"]
    if layout == "raw":
        bits = _read_values(reader, numel, dtype, store)
    elif layout == "codebook":
        k = int(entry["k"])
        codebook = _read_values(reader, k, dtype, store)
        bits = codebook[streams.decode_stream(reader, k, numel)]
        if bits.size != numel:
            raise CorruptError(f"index stream has {bits.size} symbols, expected {numel}")
    elif layout in ("sparse_raw", "sparse_codebook"):
        w, nnz = int(entry["index_bits"]), int(entry["nnz"])
        if not 1 <= w <= 16 or not 0 <= nnz <= numel:
            raise CorruptError("index_bits or nnz out of range")
        codebook = _read_values(reader, int(entry["k"]), dtype, store) if layout == "sparse_codebook" else None
        positions = sparse.from_gaps(streams.decode_stream(reader, 1 << w, numel + nnz), w, numel, nnz)
        if codebook is None:
            values = _read_values(reader, nnz, dtype, store)
        else:
            symbols = streams.decode_stream(reader, codebook.size, nnz)
            if symbols.size != nnz:
                raise CorruptError(f"weight stream has {symbols.size} symbols, expected {nnz}")
            values = codebook[symbols]
        bits = np.zeros(numel, dtype=values.dtype)
        bits[positions] = values
    else:
        raise CorruptError(f"unknown layout {layout!r}")
    reader.done()
    return from_bits(bits, dtype, shape)
