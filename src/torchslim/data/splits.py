"""DataSplits and the one recipe every source goes through: stratified split, then standardise.

The stratified split is written by hand (numpy, ~30 lines) rather than taken from
``sklearn.model_selection``: importing that costs ~1 s, more than loading MNIST, and it
refuses classes with a single example, which small user datasets have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from torchslim.data.transforms import channel_stats, standardise
from torchslim.errors import UserError


@dataclass(frozen=True)
class DataSplits:
    """Train / val / test splits: any torch Dataset or DataLoader yielding (inputs, labels).

    The bundled, ``.npz`` and image-folder sources give standardised float32 images (N, C, H, W)
    and int64 labels (N,): per channel with the *training* split's ``mean`` and ``std``
    (population std over N, H, W, computed after scaling, resizing and channel repeat). Apply
    the same to new raw inputs: ``(x_raw * pixel_scale - mean[c]) / std[c]``. A user's own
    splits (``DataSplits(name, train, val=..., test=...)``, or the mapping ``compress`` takes)
    may leave ``val``, ``test``, ``num_classes``, ``input_shape`` and the constants unset.
    """

    name: str
    train: Dataset | DataLoader
    val: Dataset | DataLoader | None = None
    test: Dataset | DataLoader | None = None
    num_classes: int | None = None
    input_shape: tuple[int, int, int] | None = None
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    pixel_scale: float | None = None

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """What a deployed model needs to be fed raw pixels (None when not standardised here):
        ``{"pixel_scale", "mean", "std", "layout": "NCHW", "channels", "image_size"}``."""
        if self.mean is None or self.std is None or self.pixel_scale is None:
            return None
        shape = self.input_shape
        return {"pixel_scale": self.pixel_scale, "mean": list(self.mean), "std": list(self.std), "layout": "NCHW",
                "channels": len(self.mean), "image_size": None if shape is None else list(shape[1:])}


def _largest_remainder(quota: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integers summing to ``total``, each floor or ceil of ``quota`` (ties broken at random)."""
    counts = np.floor(quota).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        frac = quota - counts
        order = np.lexsort((rng.permutation(len(quota)), -frac))
        counts[order[:short]] += 1
    return counts


def stratified_split(
    y: np.ndarray, n_val: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted index arrays (train, val, test) of sizes (N - n_val - n_test, n_val, n_test).

    Each class c with n_c examples gets floor or ceil of n_c * n_test / N test examples; val
    is then drawn the same way from what remains, so the sizes are exact and every class is
    represented in proportion (up to one example).
    """
    rng = np.random.default_rng(seed)
    classes, y_idx = np.unique(y, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(y_idx == k)) for k in range(len(classes))]
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    n_test_c = _largest_remainder(sizes * n_test / len(y), n_test, rng)
    left = sizes - n_test_c
    n_val_c = _largest_remainder(left * n_val / max(left.sum(), 1.0), n_val, rng)
    test = [m[:t] for m, t in zip(members, n_test_c, strict=True)]
    val = [m[t : t + v] for m, t, v in zip(members, n_test_c, n_val_c, strict=True)]
    train = [m[t + v :] for m, t, v in zip(members, n_test_c, n_val_c, strict=True)]
    train_idx, val_idx, test_idx = (np.sort(np.concatenate(p)) for p in (train, val, test))
    return train_idx, val_idx, test_idx


def split_sizes(
    n: int, val_fraction: float, test_fraction: float, *, source: str
) -> tuple[int, int]:
    """(n_val, n_test) = rounded fractions of n; fails unless at least one example trains."""
    for field_name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise UserError(f"{field_name} must be in [0, 1), got {frac!r}")
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < 1:
        raise UserError(
            f"{source}: {n} examples leave none for training with "
            f"val_fraction={val_fraction} and test_fraction={test_fraction}"
        )
    return n_val, n_test


def split_indices(
    name: str, y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated seed and fractions, then :func:`stratified_split` of the labels ``y`` (N,)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative int, got {seed!r}")
    n_val, n_test = split_sizes(len(y), val_fraction, test_fraction, source=name)
    return stratified_split(y, n_val, n_test, seed)


def build_splits(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    class_names: tuple[str, ...],
    pixel_scale: float,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> DataSplits:
    """Split (N, C, H, W) images (raw * pixel_scale) and (N,) int64 labels, then standardise."""
    train_idx, val_idx, test_idx = (
        torch.from_numpy(i) for i in split_indices(name, y.numpy(), val_fraction, test_fraction, seed)
    )
    mean, std = channel_stats(x[train_idx])

    def subset(idx: torch.Tensor) -> TensorDataset:
        return TensorDataset(standardise(x[idx], mean, std), y[idx].to(torch.int64))

    c, h, w = x.shape[1:]
    return DataSplits(
        name=name,
        train=subset(train_idx),
        val=subset(val_idx),
        test=subset(test_idx),
        num_classes=num_classes,
        input_shape=(int(c), int(h), int(w)),
        class_names=class_names,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        pixel_scale=pixel_scale,
    )
