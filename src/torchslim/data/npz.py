"""A user's own arrays from an ``.npz`` file: ``x`` (N, C, H, W) or (N, H, W), ``y`` (N,) ints.

Loaded with ``allow_pickle=False``: an .npz can carry pickled objects, and unpickling runs code.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from torchslim.data.splits import DataSplits, build_splits
from torchslim.data.transforms import resize, set_channels
from torchslim.errors import UserError


def _read_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    if key not in archive.files:
        found = ", ".join(archive.files) or "none"
        raise UserError(f"{path}: missing array {key!r} (found: {found})")
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy refuses object arrays without allow_pickle
            raise UserError(
                f"{path}: array {key!r} holds Python objects; save numeric arrays"
            ) from exc
        raise UserError(f"{path}: cannot read array {key!r} ({exc})") from exc


def _check_x(x: np.ndarray, path: Path) -> np.ndarray:
    """Validated images as (N, C, H, W)."""
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise UserError(f"{path}: x must be an integer or float array, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise UserError(f"{path}: x must be (N, C, H, W) or (N, H, W), got shape {x.shape}")
    if x.shape[-1] in (1, 3, 4) and x.shape[1] >= 8:  # 8+ input channels: far likelier H
        raise UserError(
            f"{path}: x of shape {x.shape} looks channels-last; transpose it to (N, C, H, W)"
        )
    if len(x) == 0:
        raise UserError(f"{path}: x holds no examples")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise UserError(f"{path}: x contains NaN or infinite values")
    if np.issubdtype(x.dtype, np.floating) and np.finfo(x.dtype).max > np.finfo(np.float32).max:
        biggest, limit = float(np.abs(x).max()), float(np.finfo(np.float32).max)
        if biggest > limit:  # finite in float64, infinite once made float32
            raise UserError(f"{path}: x holds values up to {biggest:.3g}, beyond float32's range "
                            f"({limit:.3g}); rescale the data before saving it")
    return x


def _check_y(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: y must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise UserError(f"{path}: y must be 1-D (N,), got shape {y.shape}")
    if len(y) != n:
        raise UserError(f"{path}: x has {n} examples but y has {len(y)} labels")
    if y.min() < 0:
        raise UserError(f"{path}: y has negative label {int(y.min())}; labels must be 0..K-1")
    return y.astype(np.int64)


def from_npz(
    path: str | os.PathLike,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataSplits:
    """Standardised, stratified, seeded splits of the arrays ``x`` and ``y`` in an .npz file.

    ``x`` (N, C, H, W) or (N, H, W), integer or float; uint8 is divided by 255, other dtypes
    are taken as they are (standardisation makes the scale immaterial). ``y`` (N,) integer
    labels 0..K-1; ``num_classes = max(y) + 1``. ``image_size`` resizes bilinearly to (S, S);
    ``channels`` repeats a grey channel.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"npz file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:  # ValueError: not a numpy file at all
        raise UserError(f"{path}: not an .npz archive ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: not an .npz archive (a single .npy array; use numpy.savez)")
    try:
        with archive:
            x = _check_x(_read_array(archive, "x", path), path)
            y = _check_y(_read_array(archive, "y", path), len(x), path)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: corrupt .npz archive ({exc})") from exc

    pixel_scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    images = torch.from_numpy(x.astype(np.float64) * pixel_scale).float()
    images = set_channels(resize(images, image_size), channels, source=str(path))
    num_classes = int(y.max()) + 1
    return build_splits(
        path.stem,
        images,
        torch.from_numpy(y),
        num_classes=num_classes,
        class_names=tuple(str(k) for k in range(num_classes)),
        pixel_scale=pixel_scale,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
