"""Relative-index sparse layout of Deep Compression (Han et al. 2016, s. 2 and Fig. 2).

Each non-zero is stored with the number of zeros before it (its gap from the previous
non-zero) in ``index_bits`` bits. A gap too large for the field is bridged with filler
entries. The paper's filler is a zero *weight* at the end of the span, costing one index
and one weight code; here the top gap value ``F = 2**index_bits - 1`` itself means "skip F
positions, no weight follows", so a filler costs one index symbol and nothing in the
weight stream. For non-zeros at flat positions p_0 < p_1 < ... (prev = -1):

    d = p_i - prev - 1;  emit F while d >= F (d -= F);  emit d and the weight

Decoding: a symbol s < F advances s positions and places the next weight; s = F advances F.
"""

from __future__ import annotations

import numpy as np

from torchslim.codec.bitio import CorruptError


def to_gaps(positions: np.ndarray, index_bits: int) -> np.ndarray:
    """Gap symbols (ints in [0, 2**index_bits)) for sorted flat ``positions`` of non-zeros."""
    if not 1 <= index_bits <= 16:
        raise ValueError(f"index_bits must be in 1..16, got {index_bits}")
    filler = (1 << index_bits) - 1
    positions = np.asarray(positions, dtype=np.int64)
    gaps = np.diff(positions, prepend=-1) - 1
    fillers = gaps // filler
    remainder = gaps - fillers * filler
    # Vectorised "emit F fillers[i] times, then remainder[i]".
    repeats = fillers + 1
    out = np.full(int(repeats.sum()), filler, dtype=np.int64)
    ends = np.cumsum(repeats) - 1
    out[ends] = remainder
    return out


def gap_count(positions: np.ndarray, index_bits: int) -> int:
    """Number of gap symbols :func:`to_gaps` emits, without building them."""
    gaps = np.diff(np.asarray(positions, dtype=np.int64), prepend=-1) - 1
    return int(np.sum(gaps // ((1 << index_bits) - 1))) + len(positions)


def from_gaps(symbols: np.ndarray, index_bits: int, numel: int, nnz: int) -> np.ndarray:
    """Flat positions of the ``nnz`` non-zeros; checks they fit in ``numel`` positions."""
    filler = (1 << index_bits) - 1
    symbols = np.asarray(symbols, dtype=np.int64)
    is_value = symbols != filler
    if int(is_value.sum()) != nnz:
        raise CorruptError(f"index stream places {int(is_value.sum())} weights, expected {nnz}")
    advance = np.where(is_value, symbols + 1, filler)
    positions = (np.cumsum(advance) - 1)[is_value]
    if positions.size and positions[-1] >= numel:
        raise CorruptError(f"index stream runs past the tensor's {numel} elements")
    return positions
