"""Relative-index encoding with fillers (Han et al. 2016, Fig. 2) against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchslim.codec.bitio import CorruptError
from torchslim.codec.sparse import from_gaps, gap_count, to_gaps


def test_gaps_with_filler_by_hand():
    # index_bits 3 -> filler F = 7. Non-zeros at 1, 4 and 15 (the paper's Fig. 2 uses 3 bits too):
    # gap 1 -> "1"; gap 2 -> "2"; gap 10 -> filler (skip 7), then "3".
    assert to_gaps(np.array([1, 4, 15]), 3).tolist() == [1, 2, 7, 3]
    assert from_gaps(np.array([1, 2, 7, 3]), 3, numel=16, nnz=3).tolist() == [1, 4, 15]


def test_gap_of_exactly_the_filler_width():
    assert to_gaps(np.array([7]), 3).tolist() == [7, 0]
    assert to_gaps(np.array([14]), 3).tolist() == [7, 7, 0]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=400), st.integers(1, 8))
def test_round_trip(mask, bits):
    positions = np.flatnonzero(mask)
    gaps = to_gaps(positions, bits)
    assert gaps.size == gap_count(positions, bits)
    assert gaps.max(initial=0) < 2**bits
    assert from_gaps(gaps, bits, len(mask), positions.size).tolist() == positions.tolist()


def test_from_gaps_rejects_overrun_and_count_mismatch():
    with pytest.raises(CorruptError):
        from_gaps(np.array([5]), 3, numel=4, nnz=1)
    with pytest.raises(CorruptError):
        from_gaps(np.array([1, 2]), 3, numel=10, nnz=3)
