"""A user's own images laid out one sub-folder per class (``root/<class>/<image>``), via PIL.

Classes are the sorted sub-folder names; hidden entries and files whose extension is not an
image format are ignored. Images stay on disk: each split is a map-style Dataset that decodes
an image when a batch asks for it (converted to grey "L" or RGB, resized to (S, S) with PIL's
bilinear filter), so a folder need not fit in memory. Only image headers are read up front
(to choose grey or colour); the standardisation statistics are measured once, on a seeded
sample of training images, and kept in the DataSplits (in memory, no cache file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from torchslim.data.splits import DataSplits, split_indices
from torchslim.data.transforms import channel_stats, check_image_size, set_channels, standardise
from torchslim.errors import UserError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
STATS_SAMPLES = 1000  # training images the standardisation statistics are measured on


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


def _image_modes(paths: list[Path]) -> list[str]:
    """PIL mode of every image, from its header only (no pixel is decoded)."""
    from PIL import Image, UnidentifiedImageError

    modes = []
    for path in paths:
        try:
            with Image.open(path) as im:
                modes.append(im.mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"unreadable image {path} ({exc})") from exc
    return modes


def _choose_grey(root: Path, paths: list[Path], channels: int | None) -> bool:
    """Grey when asked, or when every image is grey; a folder mixing grey and colour images
    without ``channels`` is an error naming an odd file (converting silently would change them)."""
    if channels in (1, 3):
        return channels == 1
    grey = [m in GREY_MODES for m in _image_modes(paths)]
    if all(grey) or not any(grey):
        return all(grey)
    odd_is_grey = sum(grey) * 2 < len(grey)
    odd = [p for p, g in zip(paths, grey, strict=True) if g == odd_is_grey]
    kind, others = ("grey", "colour") if odd_is_grey else ("colour", "grey")
    raise UserError(f"image folder {root} mixes channel counts: {odd[0]} is {kind} ({len(odd)} {kind} image(s), "
                    f"{len(paths) - len(odd)} {others}); set channels: 1 or 3 to convert them all")


class ImageFolderSplit(Dataset):
    """Map-style Dataset over image files, decoded one at a time (per batch, in ``num_workers``
    DataLoader workers): item i is (standardised float32 (C, S, S), int64 label)."""

    def __init__(self, items: list[tuple[Path, int]], image_size: int, grey: bool, channels: int | None,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None, num_workers: int = 0) -> None:
        self.items = items
        self.image_size = image_size
        self.grey = grey
        self.channels = channels
        self.mean = mean
        self.std = std
        self.num_workers = num_workers  # read by torchslim.data.access when it batches this split

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, index: int) -> torch.Tensor:
        """Image ``index`` as (C, S, S) float32 in [0, 1], before standardisation."""
        path = self.items[index][0]
        pixels = _read_image(path, "L" if self.grey else "RGB", self.image_size)
        pixels = pixels[None] if self.grey else pixels.transpose(2, 0, 1)
        x = torch.from_numpy(np.array(pixels, dtype=np.float32))[None] / 255.0
        return set_channels(x, self.channels, source=str(path))[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.raw(index)
        if self.mean is not None and self.std is not None:
            x = standardise(x[None], self.mean, self.std)[0]
        return x, torch.tensor(self.items[index][1], dtype=torch.int64)


def from_image_folder(
    path: str | os.PathLike,
    image_size: int,
    *,
    channels: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    num_workers: int = 0,
    stats_samples: int = STATS_SAMPLES,
) -> DataSplits:
    """Standardised, stratified, seeded splits of ``root/<class>/<image>`` images, streamed from disk.

    ``channels=None`` gives 1 channel when every image is greyscale and 3 (RGB) when every image
    is in colour (a mix is an error naming an odd file); ``channels=1`` converts to grey
    (ITU-R 601-2 luma), ``channels=3`` to RGB. Items are (channels, image_size, image_size)
    float32, pixel values divided by 255, decoded when a batch is read (``num_workers``
    DataLoader workers). ``mean`` / ``std`` are measured once on ``stats_samples`` training
    images drawn with ``seed`` (all of them when there are fewer).
    """
    check_image_size(image_size)
    if image_size is None:
        raise UserError("from_image_folder needs image_size (images are resized to S x S)")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise UserError(f"num_workers must be a non-negative int, got {num_workers!r}")
    if isinstance(stats_samples, bool) or not isinstance(stats_samples, int) or stats_samples < 1:
        raise UserError(f"stats_samples must be a positive int, got {stats_samples!r}")
    root = Path(path)
    class_names, items = list_images(root)
    grey = _choose_grey(root, [p for p, _ in items], channels)
    labels = np.array([label for _, label in items], dtype=np.int64)
    train_idx, val_idx, test_idx = split_indices(root.name, labels, val_fraction, test_fraction, seed)

    def split(idx: np.ndarray, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> ImageFolderSplit:
        return ImageFolderSplit([items[i] for i in idx], image_size, grey, channels, mean, std, num_workers)

    unscaled = split(train_idx)
    sample = np.random.default_rng(seed).permutation(len(unscaled))[:stats_samples]
    mean, std = channel_stats(torch.stack([unscaled.raw(int(i)) for i in np.sort(sample)]))
    c = unscaled.raw(0).shape[0]
    return DataSplits(
        name=root.name,
        train=split(train_idx, mean, std),
        val=split(val_idx, mean, std),
        test=split(test_idx, mean, std),
        num_classes=len(class_names),
        input_shape=(int(c), image_size, image_size),
        class_names=class_names,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        pixel_scale=1.0 / 255.0,
    )
