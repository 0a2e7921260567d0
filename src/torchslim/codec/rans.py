"""Static range asymmetric numeral systems (rANS; Duda 2013, "Asymmetric numeral systems"),
the byte-renormalising 32-bit variant of Giesen's ryg_rans.

Why beyond Huffman: Huffman spends a whole number of bits per symbol, so a stream whose most
common symbol has probability p > 0.5 costs at least 1 bit/symbol where its Shannon entropy
H = -sum p_s log2 p_s may be far lower. rANS codes symbol s with frequency f_s (of 2**S) in
log2(2**S / f_s) bits, fractional, so its cost is within the frequency-quantisation loss
(sum_s p_s log2(p_s 2**S / f_s)) plus 4 flush bytes of H. ``S`` (scale bits) is chosen per
stream to minimise payload + frequency-table bytes.

State x lives in [L, 256 L), L = 2**23. Encoding (symbols in reverse):
    while x >= ((L >> S) << 8) * f_s: emit x & 255; x >>= 8
    x = (x // f_s) << S + x % f_s + c_s
Decoding: slot = x & (2**S - 1); s = symbol(slot); x = f_s (x >> S) + slot - c_s; refill.
Written by hand (about 60 lines): the rANS packages on PyPI are compiled extensions the
project does not depend on.
"""

from __future__ import annotations

import math

import numpy as np

from torchslim.codec.bitio import CorruptError

RANS_L = 1 << 23
SCALE_BITS = range(4, 17)


def normalize(counts: np.ndarray, scale_bits: int) -> np.ndarray:
    """Frequencies summing to 2**scale_bits, every used symbol >= 1 (largest-remainder).

    Raises ValueError when more symbols are used than 2**scale_bits slots.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total, target = int(counts.sum()), 1 << scale_bits
    used = counts > 0
    if int(used.sum()) > target:
        raise ValueError("more used symbols than frequency slots")
    freqs = np.where(used, np.maximum(counts * target // max(total, 1), 1), 0)
    diff = target - int(freqs.sum())
    order = np.argsort(-(counts * target / max(total, 1) - freqs), kind="stable")
    if diff > 0:
        for s in order:
            if used[s] and diff:
                freqs[s] += 1
                diff -= 1
        freqs[np.argmax(counts)] += diff
    while diff < 0:  # the max(..., 1) floors overshot: take from the largest frequencies
        s = int(np.argmax(freqs))
        take = min(-diff, int(freqs[s]) - 1)
        freqs[s] -= take
        diff += take
    return freqs


def coded_bits(counts: np.ndarray, freqs: np.ndarray, scale_bits: int) -> float:
    """Ideal payload bits: sum_s n_s log2(2**S / f_s) (rANS is within 32 flush bits of it)."""
    used = counts > 0
    return float(np.sum(counts[used] * (scale_bits - np.log2(freqs[used]))))


def encode(symbols: np.ndarray, freqs: np.ndarray, scale_bits: int) -> bytes:
    cum = np.concatenate([[0], np.cumsum(freqs)[:-1]]).tolist()
    fl = np.asarray(freqs).tolist()
    x, out = RANS_L, bytearray()
    bound = (RANS_L >> scale_bits) << 8
    for s in reversed(np.asarray(symbols).tolist()):
        f = fl[s]
        x_max = bound * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = ((x // f) << scale_bits) + (x % f) + cum[s]
    out += x.to_bytes(4, "little")
    out.reverse()
    return bytes(out)


def decode(data: bytes, freqs: np.ndarray, scale_bits: int, count: int) -> np.ndarray:
    freqs = np.asarray(freqs, dtype=np.int64)
    if freqs.size == 0 or int(freqs.sum()) != 1 << scale_bits or freqs.min() < 0:
        raise CorruptError("rANS frequency table does not sum to its scale")
    if len(data) < 4:
        raise CorruptError("rANS stream shorter than its 4-byte state")
    slot_sym = np.repeat(np.arange(freqs.size), freqs).tolist()
    cum = np.concatenate([[0], np.cumsum(freqs)[:-1]]).tolist()
    fl = freqs.tolist()
    mask = (1 << scale_bits) - 1
    x = int.from_bytes(data[:4], "big")
    pos, n = 4, len(data)
    out = [0] * count
    for i in range(count):
        slot = x & mask
        s = slot_sym[slot]
        out[i] = s
        x = fl[s] * (x >> scale_bits) + slot - cum[s]
        while x < RANS_L:
            if pos >= n:
                raise CorruptError("rANS stream ends early")
            x = (x << 8) | data[pos]
            pos += 1
    if pos != n or x != RANS_L:
        raise CorruptError("rANS stream does not end in its initial state")
    return np.asarray(out, dtype=np.int64)


def entropy_bits(counts: np.ndarray) -> float:
    """Order-0 Shannon information of a stream: n * H = -sum_s n_s log2(n_s / n), in bits."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    used = counts[counts > 0]
    return float(-np.sum(used * np.log2(used / total))) if total else 0.0


def best_scale(counts: np.ndarray, table_bytes: callable) -> tuple[int, np.ndarray, float]:
    """(scale_bits, freqs, estimated total bytes) minimising payload + table over SCALE_BITS."""
    best: tuple[int, np.ndarray, float] | None = None
    for bits in SCALE_BITS:
        try:
            freqs = normalize(counts, bits)
        except ValueError:
            continue
        total = math.ceil(coded_bits(counts, freqs, bits) / 8) + 4 + table_bytes(freqs)
        if best is None or total < best[2]:
            best = (bits, freqs, total)
    if best is None:
        raise ValueError("alphabet too large for rANS")
    return best
