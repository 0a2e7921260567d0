"""A user's own images laid out one sub-folder per class (``root/<class>/<image>``), via PIL.

Classes are the sorted sub-folder names; hidden entries and files whose extension is not an
image format are ignored. Every image is converted to grey ("L") or RGB and resized to
(S, S) with PIL's bilinear filter.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from torchslim.data.splits import DataSplits, build_splits
from torchslim.data.transforms import check_image_size, set_channels
from torchslim.errors import UserError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def _visible(entries: list[Path]) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith("."))


def list_images(root: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """(class names, [(image path, class index)]) for ``root/<class>/<image>``."""
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    class_dirs = [p for p in _visible(list(root.iterdir())) if p.is_dir()]
    if not class_dirs:
        raise UserError(
            f"image folder {root} has no class sub-folders (expected root/<class>/*.png)"
        )
    items: list[tuple[Path, int]] = []
    for label, class_dir in enumerate(class_dirs):
        files = [
            p
            for p in _visible(list(class_dir.iterdir()))
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files:
            raise UserError(f"class folder {class_dir} has no images")
        items.extend((p, label) for p in files)
    return tuple(p.name for p in class_dirs), items


def _read_image(path: Path, mode: str, image_size: int) -> np.ndarray:
    """(S, S) or (S, S, 3) uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"unreadable image {path} ({exc})") from exc


def _all_grey(paths: list[Path]) -> bool:
    from PIL import Image, UnidentifiedImageError

    modes = []
    for path in paths:
        try:
            with Image.open(path) as im:  # reads the header only
                modes.append(im.mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"unreadable image {path} ({exc})") from exc
    return all(m in GREY_MODES for m in modes)


def from_image_folder(
    path: str | os.PathLike,
    image_size: int,
    *,
    channels: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataSplits:
    """Standardised, stratified, seeded splits of ``root/<class>/<image>`` images.

    ``channels=None`` gives 1 channel when every image is greyscale and 3 (RGB) otherwise;
    ``channels=1`` converts to grey (ITU-R 601-2 luma), ``channels=3`` to RGB. Images come out
    (N, channels, image_size, image_size) float32; pixel values are divided by 255.
    """
    check_image_size(image_size)
    if image_size is None:
        raise UserError("from_image_folder needs image_size (images are resized to S x S)")
    root = Path(path)
    class_names, items = list_images(root)
    paths = [p for p, _ in items]
    grey = channels == 1 or (channels != 3 and _all_grey(paths))
    pixels = np.stack([_read_image(p, "L" if grey else "RGB", image_size) for p in paths])
    pixels = pixels[:, None] if grey else pixels.transpose(0, 3, 1, 2)  # -> (N, C, S, S)
    images = set_channels(torch.from_numpy(pixels).float() / 255.0, channels, source=str(root))
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return build_splits(
        root.name,
        images,
        labels,
        num_classes=len(class_names),
        class_names=class_names,
        pixel_scale=1.0 / 255.0,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
