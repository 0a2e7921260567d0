"""Bit packing and byte-level helpers shared by the codec (numpy-vectorised, MSB first).

Written by hand: numpy has ``packbits`` for 1-bit values only and no variable-width packer;
what the codec needs is fixed-width packing of small unsigned ints, LEB128 varints, and a
bounds-checked byte reader that turns every overrun into :class:`CorruptError`.
"""

from __future__ import annotations

import numpy as np


class CorruptError(ValueError):
    """A stream does not decode: wrong length, symbol out of range, overrun. The file reader
    turns it into a one-line ``UserError`` naming the file and tensor."""


def pack_uint(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative ints (each < 2**width) at ``width`` bits each, MSB first, zero padded
    to a whole byte. ``width`` in 1..32; an empty array packs to b""."""
    values = np.asarray(values, dtype=np.uint64).ravel()
    if not 1 <= width <= 32:
        raise ValueError(f"width must be in 1..32, got {width}")
    if values.size and int(values.max()) >> width:
        raise ValueError(f"value {int(values.max())} does not fit in {width} bits")
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.ravel()).tobytes()


def unpack_uint(data: bytes, width: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_uint`: ``count`` ints of ``width`` bits (int64 array)."""
    need = (count * width + 7) // 8
    if len(data) != need:
        raise CorruptError(f"packed stream has {len(data)} bytes, expected {need}")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * width].reshape(count, width)
    weights = np.left_shift(np.int64(1), np.arange(width - 1, -1, -1, dtype=np.int64))
    return bits.astype(np.int64) @ weights


def write_varint(value: int) -> bytes:
    """Unsigned LEB128."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Sequential reader over ``bytes``; every overrun raises :class:`CorruptError`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptError(f"needs {n} bytes at offset {self.pos}, only {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        shift, value = 0, 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise CorruptError("varint longer than 64 bits")

    def done(self) -> None:
        if self.pos != len(self.data):
            raise CorruptError(f"{len(self.data) - self.pos} trailing bytes")


def pack_table(values: np.ndarray) -> bytes:
    """A small table of non-negative ints: varint count, u8 width, values packed at width."""
    values = np.asarray(values, dtype=np.int64)
    width = max(1, int(values.max()).bit_length()) if values.size else 1
    return write_varint(values.size) + bytes([width]) + pack_uint(values, width)


def read_table(reader: Reader, max_count: int) -> np.ndarray:
    count = reader.varint()
    if count > max_count:
        raise CorruptError(f"table of {count} entries exceeds {max_count}")
    width = reader.u8()
    if not 1 <= width <= 32:
        raise CorruptError(f"table width {width} out of range")
    return unpack_uint(reader.take((count * width + 7) // 8), width, count)
