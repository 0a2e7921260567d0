"""Undo a DataSplits' standardisation so splits can be compared with the raw arrays."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import Dataset

from torchslim.data import DataSplits
from torchslim.data.access import first_samples


def raw_pixels(splits: DataSplits, ds: Dataset) -> np.ndarray:
    """(N, C, H, W) float64 back on the raw pixel scale (0..255, 0..16, ...)."""
    x = first_samples(ds, len(ds))[0].double()
    mean = torch.tensor(splits.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(splits.std, dtype=torch.float64).view(1, -1, 1, 1)
    return ((x * std + mean) / splits.pixel_scale).numpy()


def example_multiset(images: np.ndarray, labels: np.ndarray) -> Counter:
    """Multiset of (rounded image bytes, label): equal iff the same examples, in any order."""
    rows = np.rint(images).astype(np.int64).reshape(len(images), -1)
    return Counter((row.tobytes(), int(label)) for row, label in zip(rows, labels, strict=True))


def splits_multiset(splits: DataSplits) -> Counter:
    total: Counter = Counter()
    for ds in (splits.train, splits.val, splits.test):
        total += example_multiset(raw_pixels(splits, ds), first_samples(ds, len(ds))[1].numpy())
    return total
