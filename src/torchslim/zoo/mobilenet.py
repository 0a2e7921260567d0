"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

Same layout and parameter count as torchvision's ``mobilenet_v2`` (3,504,872 at width 1.0).
Small images (``image_size <= 64``, CIFAR-style): the stem conv and the first stride-2
stage (c=24) use stride 1, so the total downsampling is 8 instead of 32 and a 32x32 input
ends at 4x4 rather than 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.zoo.blocks import init_weights
from torchslim.zoo.image_size import SMALL_IMAGE_MAX, check_image_size, check_width_mult
from torchslim.zoo.registry import register_model

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never going down by more than 10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) - BN - ReLU6; ``groups == channels`` makes it depthwise."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(),
        )


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) - 3x3 depthwise (ReLU6) - 1x1 linear project, + x when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_ch * expand_ratio)
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """(N, C, S, S) -> (N, num_classes); features end in 1x1 conv to 1280*max(1, width) channels."""

    def __init__(self, in_channels: int, num_classes: int, width_mult: float, small: bool) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult)
        last_ch = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, in_ch, stride=1 if small else 2)]
        for i, (t, c, n, s) in enumerate(_SETTINGS):
            out_ch = make_divisible(c * width_mult)
            if small and i == 1:
                s = 1
            for j in range(n):
                layers.append(InvertedResidual(in_ch, out_ch, s if j == 0 else 1, t))
                in_ch = out_ch
        layers.append(ConvBNReLU6(in_ch, last_ch, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_ch, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


@register_model(
    "mobilenetv2",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="MobileNetV2 (inverted residuals, depthwise, ReLU6), 3,504,872 params at width 1.0",
)
def mobilenetv2(
    *, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 1.0, image_size: int = 224
) -> nn.Module:
    check_image_size("mobilenetv2", image_size, minimum=32)
    width_mult = check_width_mult("mobilenetv2", width_mult)
    return MobileNetV2(in_channels, num_classes, width_mult, small=image_size <= SMALL_IMAGE_MAX)
