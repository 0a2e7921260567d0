"""One symbol stream (codebook indices or relative positions) coded with one of three coders,
plus the statistics the per-layer table reports.

Serialised stream: u8 coder, varint count, then
- ``packed``:  u8 width, the symbols at ``width`` bits each (Deep Compression before Huffman);
- ``huffman``: code-length table, varint payload bytes, canonical codes (see ``huffman``);
- ``rans``:    u8 scale bits, frequency table, varint payload bytes, rANS bytes (see ``rans``).

``coder="auto"`` picks the smallest of the three from exact size formulas, then encodes once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from torchslim.codec import huffman, rans
from torchslim.codec.bitio import CorruptError, Reader, pack_table, pack_uint, read_table, unpack_uint, write_varint

Coder = Literal["auto", "packed", "huffman", "rans"]
CODERS = ("packed", "huffman", "rans")
_CODE = {"packed": 0, "huffman": 1, "rans": 2}
MAX_ALPHABET = 1 << 16


@dataclass(frozen=True)
class StreamStats:
    """Sizes of one stream in bits: its order-0 Shannon information and each coder's cost
    (payload + table, excluding the few bytes of count/length framing)."""

    count: int
    entropy_bits: float
    packed_bits: int
    huffman_bits: int
    rans_bits: int
    coder: str
    stored_bytes: int


def _packed_width(alphabet: int) -> int:
    return max(1, (alphabet - 1).bit_length())


def _table_bytes(values: np.ndarray) -> int:
    return len(pack_table(values))


def plan(symbols: np.ndarray, alphabet: int, coder: Coder = "auto") -> tuple[str, dict, StreamStats]:
    """Choose the coder for ``symbols`` (ints in [0, alphabet)) and compute every coder's cost."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if alphabet < 1 or alphabet > MAX_ALPHABET:
        raise ValueError(f"alphabet {alphabet} out of range 1..{MAX_ALPHABET}")
    counts = np.bincount(symbols, minlength=alphabet) if symbols.size else np.zeros(alphabet, dtype=np.int64)
    width = _packed_width(alphabet)
    costs = {"packed": symbols.size * width + 8}
    lengths = huffman.code_lengths(counts)
    costs["huffman"] = huffman.encoded_bits(counts, lengths) + 8 * _table_bytes(lengths) + 7
    params: dict = {"packed": {"width": width}, "huffman": {"lengths": lengths}}
    try:
        scale, freqs, total_bytes = rans.best_scale(counts, _table_bytes)
        costs["rans"] = 8 * total_bytes + 8
        params["rans"] = {"scale_bits": scale, "freqs": freqs}
    except ValueError:
        costs["rans"] = 1 << 62
    if symbols.size == 0:
        costs = {"packed": 8, "huffman": 1 << 62, "rans": 1 << 62}
    chosen = min(CODERS, key=lambda c: costs[c]) if coder == "auto" else coder
    if costs[chosen] >= 1 << 62:
        chosen = "packed"
    stats = StreamStats(int(symbols.size), rans.entropy_bits(counts), int(costs["packed"]),
                        int(costs["huffman"]), int(costs["rans"]), chosen, 0)
    return chosen, params[chosen], stats


def encode_stream(symbols: np.ndarray, alphabet: int, coder: Coder = "auto") -> tuple[bytes, StreamStats]:
    symbols = np.asarray(symbols, dtype=np.int64)
    chosen, params, stats = plan(symbols, alphabet, coder)
    head = bytes([_CODE[chosen]]) + write_varint(symbols.size)
    if chosen == "packed":
        body = bytes([params["width"]]) + pack_uint(symbols, params["width"])
    elif chosen == "huffman":
        payload = huffman.encode(symbols, params["lengths"])
        body = pack_table(params["lengths"]) + write_varint(len(payload)) + payload
    else:
        payload = rans.encode(symbols, params["freqs"], params["scale_bits"])
        body = bytes([params["scale_bits"]]) + pack_table(params["freqs"]) + write_varint(len(payload)) + payload
    out = head + body
    return out, StreamStats(**{**stats.__dict__, "stored_bytes": len(out)})


def decode_stream(reader: Reader, alphabet: int, max_count: int) -> np.ndarray:
    """Read one stream; every symbol is checked to lie in [0, alphabet)."""
    code = reader.u8()
    count = reader.varint()
    if count > max_count:
        raise CorruptError(f"stream claims {count} symbols, at most {max_count} possible")
    if code == _CODE["packed"]:
        width = reader.u8()
        if not 1 <= width <= 32:
            raise CorruptError(f"packed width {width} out of range")
        symbols = unpack_uint(reader.take((count * width + 7) // 8), width, count)
    elif code == _CODE["huffman"]:
        lengths = read_table(reader, alphabet)
        symbols = huffman.decode(reader.take(reader.varint()), lengths, count)
    elif code == _CODE["rans"]:
        scale = reader.u8()
        if scale not in rans.SCALE_BITS:
            raise CorruptError(f"rANS scale {scale} out of range")
        freqs = read_table(reader, alphabet)
        symbols = rans.decode(reader.take(reader.varint()), freqs, scale, count)
    else:
        raise CorruptError(f"unknown stream coder {code}")
    if symbols.size and (symbols.max() >= alphabet or symbols.min() < 0):
        raise CorruptError(f"symbol out of range (alphabet {alphabet})")
    return symbols
