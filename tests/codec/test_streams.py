"""Bit packing, canonical Huffman, rANS and the stream container, against hand references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchslim.codec import huffman, rans, streams
from torchslim.codec.bitio import CorruptError, Reader, pack_uint, unpack_uint, write_varint


@given(st.lists(st.integers(0, 2**13 - 1), max_size=200), st.integers(13, 32))
def test_pack_uint_round_trip(values, width):
    data = pack_uint(np.array(values), width)
    assert len(data) == (len(values) * width + 7) // 8
    assert unpack_uint(data, width, len(values)).tolist() == values


def test_pack_uint_layout_is_msb_first():
    assert pack_uint(np.array([1, 2, 3]), 3) == bytes([0b00101001, 0b10000000])


@given(st.integers(0, 2**63))
def test_varint_round_trip(value):
    reader = Reader(write_varint(value))
    assert reader.varint() == value
    reader.done()


def test_huffman_lengths_match_textbook_optimum():
    # CLRS 16.3: a..f with frequencies 45, 13, 12, 16, 9, 5 -> lengths 1, 3, 3, 3, 4, 4 (224 bits).
    counts = np.array([45, 13, 12, 16, 9, 5])
    lengths = huffman.code_lengths(counts)
    assert lengths.tolist() == [1, 3, 3, 3, 4, 4]
    assert huffman.encoded_bits(counts, lengths) == 224


def test_huffman_canonical_codes_follow_rfc1951():
    # RFC 1951 s. 3.2.2 example: lengths (3, 3, 3, 3, 3, 2, 4, 4) -> codes 010..110, 00, 1110, 1111.
    codes = huffman.canonical_codes(np.array([3, 3, 3, 3, 3, 2, 4, 4]))
    assert codes.tolist() == [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111]


def test_huffman_length_limit_keeps_a_prefix_code():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])  # Fibonacci counts give a maximally deep tree (29 levels)
    lengths = huffman.code_lengths(np.array(fib))
    assert lengths.max() <= huffman.MAX_LEN
    assert np.sum(np.ldexp(1.0, -lengths)) <= 1.0
    symbols = np.repeat(np.arange(30), 1)
    assert huffman.decode(huffman.encode(symbols, lengths), lengths, 30).tolist() == symbols.tolist()


symbol_lists = st.integers(1, 40).flatmap(
    lambda a: st.tuples(st.just(a), st.lists(st.integers(0, a - 1), max_size=300)))


@settings(max_examples=60, deadline=None)
@given(symbol_lists, st.sampled_from(["auto", "packed", "huffman", "rans"]))
def test_stream_round_trip(case, coder):
    alphabet, symbols = case
    data, stats = streams.encode_stream(np.array(symbols, dtype=np.int64), alphabet, coder)
    reader = Reader(data)
    assert streams.decode_stream(reader, alphabet, len(symbols)).tolist() == symbols
    reader.done()
    assert stats.stored_bytes == len(data)


def test_rans_beats_huffman_on_a_skewed_stream_and_nears_entropy():
    # p(0) = 0.95: Huffman cannot go below 1 bit/symbol; the entropy is 0.29 bits/symbol.
    rng = np.random.default_rng(0)
    symbols = (rng.random(20000) > 0.95).astype(np.int64)
    counts = np.bincount(symbols, minlength=2)
    entropy = rans.entropy_bits(counts)
    huff, _ = streams.encode_stream(symbols, 2, "huffman")
    coded, _ = streams.encode_stream(symbols, 2, "rans")
    assert len(huff) * 8 >= symbols.size
    assert len(coded) * 8 < 1.02 * entropy + 128
    reader = Reader(coded)
    assert np.array_equal(streams.decode_stream(reader, 2, symbols.size), symbols)


def test_rans_normalize_sums_to_scale_and_keeps_every_symbol():
    freqs = rans.normalize(np.array([1000000, 1, 0, 3]), 8)
    assert freqs.sum() == 256 and freqs[1] >= 1 and freqs[2] == 0 and freqs[3] >= 1


def test_decode_rejects_symbols_outside_the_alphabet():
    data, _ = streams.encode_stream(np.array([0, 5, 7]), 8, "packed")
    with pytest.raises(CorruptError):
        streams.decode_stream(Reader(data), 6, 3)


def test_rans_rejects_a_damaged_stream():
    symbols = np.arange(50) % 5
    freqs = rans.normalize(np.bincount(symbols), 10)
    data = bytearray(rans.encode(symbols, freqs, 10))
    data[-1] ^= 0x55
    with pytest.raises(CorruptError):
        rans.decode(bytes(data), freqs, 10, 50)
