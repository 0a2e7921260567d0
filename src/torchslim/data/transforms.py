"""Image-tensor transforms shared by every data source: resize, channel repeat, standardise.

All functions take and return float tensors of shape (N, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchslim.errors import UserError


def check_image_size(image_size: int | None) -> None:
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise UserError(f"image_size must be a positive int, got {image_size!r}")


def resize(x: torch.Tensor, image_size: int | None, *, pad_if_larger: bool = False) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, S, S).

    With ``pad_if_larger`` and ``S - H`` and ``S - W`` both even and >= 0, zero-pad evenly on
    each side (MNIST 28 -> 32 as in LeNet-5, whose digits sit on a zero background); otherwise
    bilinear interpolation (align_corners=False, antialiased when shrinking).
    """
    check_image_size(image_size)
    if image_size is None:
        return x
    h, w = x.shape[-2:]
    if (h, w) == (image_size, image_size):
        return x
    dh, dw = image_size - h, image_size - w
    if pad_if_larger and dh >= 0 and dw >= 0 and dh % 2 == 0 and dw % 2 == 0:
        return F.pad(x, (dw // 2, dw // 2, dh // 2, dh // 2))
    shrinking = image_size < h or image_size < w
    return F.interpolate(
        x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=shrinking
    )


def set_channels(x: torch.Tensor, channels: int | None, *, source: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, channels, H, W); only C == channels or a grey C == 1 (repeated)."""
    if channels is None or x.shape[1] == channels:
        return x
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise UserError(f"channels must be a positive int, got {channels!r}")
    if x.shape[1] != 1:
        raise UserError(
            f"{source}: cannot convert {x.shape[1]}-channel images to channels={channels} "
            "(only grey 1-channel images can be repeated)"
        )
    return x.expand(-1, channels, -1, -1).contiguous()


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of (N, C, H, W), each (C,), computed in float64.

    A constant channel gets std 1 so standardising it cannot divide by zero.
    """
    x64 = x.double()
    mean = x64.mean(dim=(0, 2, 3))
    std = x64.std(dim=(0, 2, 3), correction=0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per channel; (N, C, H, W) float -> float32."""
    out = (x.double() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    return out.float()
