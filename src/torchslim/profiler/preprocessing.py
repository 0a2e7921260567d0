"""The preprocessing a model was trained with, and a wrapper that folds it into the model.

A deployed model must be fed what it was trained on. torchslim's data sources standardise
images per channel with the training split's statistics, so the model expects
``(x_raw * pixel_scale - mean[c]) / std[c]`` for raw pixels ``x_raw`` (0..255 for 8-bit images,
0..16 for sklearn's digits), layout NCHW. :func:`data_preprocessing` gives those constants as a
plain mapping (recorded in spec.json, report.json and every exported ONNX file), and
:class:`WithPreprocessing` puts them in front of the model, so an export takes raw pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from torchslim.errors import UserError

KEYS = ("pixel_scale", "mean", "std", "layout", "channels", "image_size")


def data_preprocessing(data: Any) -> dict[str, Any] | None:
    """``data.preprocessing`` (a :class:`~torchslim.data.DataSplits`' pixel_scale, mean, std, layout,
    channels, image_size), checked; None without data or when the data was not standardised by
    torchslim (a user's own Datasets or DataLoaders)."""
    pre = getattr(data, "preprocessing", None)
    return None if pre is None else check_preprocessing(pre)


def check_preprocessing(pre: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``pre`` as plain JSON values; UserError naming the first bad field."""
    missing = [k for k in ("pixel_scale", "mean", "std") if k not in pre]
    if missing:
        raise UserError(f"preprocessing: missing field(s) {', '.join(missing)}")
    out = {k: pre[k] for k in KEYS if k in pre}
    out.setdefault("layout", "NCHW")
    if out["layout"] != "NCHW":
        raise UserError(f"preprocessing: layout must be 'NCHW', got {out['layout']!r}")
    scale = out["pixel_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise UserError(f"preprocessing: pixel_scale must be a positive number, got {scale!r}")
    mean, std = (list(out[k]) if isinstance(out[k], (list, tuple)) else [out[k]] for k in ("mean", "std"))
    if not mean or len(mean) != len(std):
        raise UserError(f"preprocessing: mean and std need one value per channel, got {len(mean)} and {len(std)}")
    if any(not isinstance(s, (int, float)) or not s > 0 for s in std):
        raise UserError(f"preprocessing: std values must be > 0, got {std}")
    out.update(pixel_scale=float(scale), mean=[float(m) for m in mean], std=[float(s) for s in std])
    out.setdefault("channels", len(mean))
    return out


class WithPreprocessing(nn.Module):
    """``model((x_raw * pixel_scale - mean) / std)`` for raw pixels ``x_raw`` (N, C, H, W).

    The same operations in the same order as the data pipeline (scale, then standardise per
    channel), so float32 results match it to rounding.
    """

    def __init__(self, model: nn.Module, preprocessing: Mapping[str, Any]) -> None:
        super().__init__()
        pre = check_preprocessing(preprocessing)
        self.model = model
        self.pixel_scale = pre["pixel_scale"]
        self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(pre["std"], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> Any:
        return self.model((x * self.pixel_scale - self.mean) / self.std)
