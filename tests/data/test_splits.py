from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchslim.data.splits import build_splits, split_sizes, stratified_split
from torchslim.errors import UserError


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=120),
    val_fraction=st.floats(0.0, 0.4),
    test_fraction=st.floats(0.0, 0.4),
    seed=st.integers(0, 2**31),
)
def test_stratified_split_is_an_exact_proportional_partition(
    labels, val_fraction, test_fraction, seed
):
    y = np.array(labels)
    n = len(y)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < 1:
        return
    train, val, test = stratified_split(y, n_val, n_test, seed)
    assert (len(train), len(val), len(test)) == (n - n_val - n_test, n_val, n_test)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(n))
    for c in np.unique(y):
        quota = np.sum(y == c) * n_test / n
        assert math.floor(quota) <= np.sum(y[test] == c) <= math.ceil(quota)
    again = stratified_split(y, n_val, n_test, seed)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))


def test_singleton_classes_are_fine():
    train, val, test = stratified_split(np.array([0, 1, 2, 2, 2, 2]), 1, 1, seed=0)
    assert len(train) == 4 and len(val) == 1 and len(test) == 1


def test_split_sizes_rejects_bad_fractions():
    assert split_sizes(10, 0.1, 0.2, source="s") == (1, 2)
    with pytest.raises(UserError, match="test_fraction"):
        split_sizes(10, 0.1, 1.5, source="s")
    with pytest.raises(UserError, match="s: 2 examples leave none for training"):
        split_sizes(2, 0.5, 0.5 - 1e-9, source="s")


def test_build_splits_standardises_per_channel_with_train_stats():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 2, 3, 3, generator=gen)
    x[:, 1] = x[:, 1] * 5 + 2
    y = torch.arange(40) % 4
    s = build_splits(
        "toy",
        x,
        y,
        num_classes=4,
        class_names=tuple("abcd"),
        pixel_scale=1.0,
        val_fraction=0.25,
        test_fraction=0.25,
        seed=0,
    )
    xt = s.train.tensors[0].double()
    np.testing.assert_allclose(xt.mean(dim=(0, 2, 3)), [0, 0], atol=1e-6)
    np.testing.assert_allclose(xt.std(dim=(0, 2, 3), correction=0), [1, 1], atol=1e-6)
    # val is standardised with the train statistics, not its own
    xv = s.val.tensors[0].double()
    restored = xv * torch.tensor(s.std).view(1, 2, 1, 1) + torch.tensor(s.mean).view(1, 2, 1, 1)
    matches = [(restored[i] - x).abs().amax(dim=(1, 2, 3)).min() < 1e-6 for i in range(len(xv))]
    assert all(matches)


def test_constant_channel_does_not_divide_by_zero():
    x = torch.zeros(10, 1, 2, 2)
    s = build_splits(
        "flat",
        x,
        torch.arange(10) % 2,
        num_classes=2,
        class_names=("a", "b"),
        pixel_scale=1.0,
        val_fraction=0.2,
        test_fraction=0.2,
        seed=0,
    )
    assert s.std == (1.0,) and torch.equal(s.train.tensors[0], torch.zeros(6, 1, 2, 2))
