"""Canonical Huffman coding of small-alphabet symbol streams (Huffman 1952), as Deep
Compression codes both its weight-index and relative-position streams (Han et al. 2016, s. 4).

Only the code *lengths* are stored; codes are assigned canonically (shorter first, then by
symbol), so the table costs ``alphabet`` small ints. Lengths are limited to ``MAX_LEN`` bits
by flattening the frequencies and rebuilding (the usual zlib-style fallback), which keeps
the decoder a single ``2**MAX_LEN``-entry lookup table: one table read per symbol.

Written by hand: the Python Huffman packages on PyPI build codes from dicts of symbols one
at a time and have no canonical-table serialisation or length limit.
"""

from __future__ import annotations

import heapq

import numpy as np

from torchslim.codec.bitio import CorruptError

MAX_LEN = 16


def code_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Huffman code length per symbol (0 for unused symbols); a lone symbol gets length 1.

    counts: (A,) non-negative ints. Ties are broken by symbol so the result is deterministic.
    """
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used[0]] = 1
        return lengths
    weights = counts.copy()
    while True:
        heap = [(int(weights[s]), int(s), (int(s),)) for s in used]
        heapq.heapify(heap)
        depth = np.zeros(counts.size, dtype=np.int64)
        tiebreak = counts.size
        while len(heap) > 1:
            w1, _, a = heapq.heappop(heap)
            w2, _, b = heapq.heappop(heap)
            for s in a + b:
                depth[s] += 1
            heapq.heappush(heap, (w1 + w2, tiebreak, a + b))
            tiebreak += 1
        if depth.max() <= max_len:
            return depth
        # Too deep: flatten the distribution and retry (halving keeps the order of counts).
        weights[used] = np.maximum(weights[used] >> 1, 1) + 1


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code value per symbol for the given lengths (RFC 1951 s. 3.2.2)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    code, prev_len = 0, 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - prev_len
        prev_len = int(lengths[symbol])
        codes[symbol] = code
        code += 1
    return codes


def check_lengths(lengths: np.ndarray) -> None:
    """Reject length tables that are not a valid prefix code (Kraft sum > 1) or too long."""
    if lengths.size and (lengths.max() > MAX_LEN or lengths.min() < 0):
        raise CorruptError("Huffman code length out of range")
    used = lengths[lengths > 0]
    if used.size and np.sum(np.ldexp(1.0, -used)) > 1.0:
        raise CorruptError("Huffman code lengths violate the Kraft inequality")


def encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """Concatenate the codes of ``symbols`` (MSB first), zero padded to a whole byte."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        return b""
    codes = canonical_codes(lengths)
    sym_len, sym_code = lengths[symbols], codes[symbols]
    width = int(sym_len.max())
    pos = np.arange(width, dtype=np.int64)
    shift = sym_len[:, None] - 1 - pos  # bit j of a code of length l is bit (l - 1 - j)
    bits = (sym_code[:, None] >> np.maximum(shift, 0)) & 1
    return np.packbits(bits[shift >= 0].astype(np.uint8)).tobytes()


def encoded_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    return int(np.sum(np.asarray(counts, dtype=np.int64) * lengths))


def decode(data: bytes, lengths: np.ndarray, count: int) -> np.ndarray:
    """Decode ``count`` symbols with a ``2**MAX_LEN`` lookup table (symbol, length)."""
    check_lengths(lengths)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.any(lengths):
        raise CorruptError("Huffman table is empty but symbols were expected")
    codes = canonical_codes(lengths)
    table_sym = np.full(1 << MAX_LEN, -1, dtype=np.int64)
    table_len = np.zeros(1 << MAX_LEN, dtype=np.int64)
    for symbol in np.flatnonzero(lengths):
        length = int(lengths[symbol])
        start = int(codes[symbol]) << (MAX_LEN - length)
        table_sym[start : start + (1 << (MAX_LEN - length))] = symbol
        table_len[start : start + (1 << (MAX_LEN - length))] = length
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.int64)
    total_bits = bits.size
    padded = np.concatenate([bits, np.zeros(MAX_LEN, dtype=np.int64)])
    # window[p] = the MAX_LEN bits starting at bit p, as an int: one table index per position.
    window = np.lib.stride_tricks.sliding_window_view(padded, MAX_LEN)[:total_bits] @ (
        1 << np.arange(MAX_LEN - 1, -1, -1, dtype=np.int64)
    )
    win, tsym, tlen = window.tolist(), table_sym.tolist(), table_len.tolist()
    out = [0] * count
    pos = 0
    for i in range(count):
        if pos >= total_bits:
            raise CorruptError("Huffman stream ends early")
        w = win[pos]
        symbol = tsym[w]
        if symbol < 0:
            raise CorruptError("invalid Huffman code")
        out[i] = symbol
        pos += tlen[w]
    if pos > total_bits or total_bits - pos >= 8:
        raise CorruptError("Huffman stream length does not match its symbol count")
    return np.asarray(out, dtype=np.int64)
