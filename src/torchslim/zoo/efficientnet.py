"""EfficientNet-B0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs").

MBConv blocks (1x1 expand - kxk depthwise - squeeze-and-excitation - 1x1 linear project,
+ x when shapes match), SiLU everywhere, sigmoid SE gates with ``in_ch // 4`` squeeze
channels, the B0 stage table (Table 1 of the paper). Same layout and parameter count as
torchvision's ``efficientnet_b0`` (5,288,548 at width 1.0); stochastic depth is left out
(it only acts in training and has no parameters). ``width_mult`` scales every width (rounded
to multiples of 8, as torchvision does; the head stays 4x the last stage); ``depth_mult`` scales
each stage's repeats (``ceil(n * depth_mult)``, the paper's depth coefficient d; 0.5 keeps every
stage and a residual block in three of them, which the fast tests use).
Small images (``image_size <= 64``): the stem and the first stride-2 stage (c=24) use
stride 1, so a 32x32 input ends at 4x4 instead of 1x1, as in the zoo's MobileNetV2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from torchslim.zoo.blocks import ConvBNAct, SqueezeExcitation, init_weights
from torchslim.zoo.image_size import SMALL_IMAGE_MAX, check_image_size, check_width_mult
from torchslim.zoo.mobilenet import make_divisible
from torchslim.zoo.registry import register_model

# (expansion, kernel, first stride, output channels, repeats), B0 baseline of Table 1.
_STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]


class MBConv(nn.Module):
    """(N, in, H, W) -> (N, out, H/s, W/s): expand (SiLU) - depthwise (SiLU) - SE - project."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = make_divisible(in_ch * expand)
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if hidden != in_ch:
            layers.append(ConvBNAct(in_ch, hidden, 1, 1, nn.SiLU))
        layers += [
            ConvBNAct(hidden, hidden, kernel, stride, nn.SiLU, groups=hidden),
            SqueezeExcitation(hidden, max(1, in_ch // 4), nn.SiLU, nn.Sigmoid),
            ConvBNAct(hidden, out_ch, 1, 1, None),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.block(x)
        return self.block(x)


class EfficientNet(nn.Module):
    """(N, C, S, S) -> (N, num_classes)."""

    def __init__(
        self, in_channels: int, num_classes: int, width_mult: float, depth_mult: float, small: bool
    ) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_channels, in_ch, 3, 1 if small else 2, nn.SiLU)]
        for i, (expand, kernel, stride, c, n) in enumerate(_STAGES):
            out_ch = make_divisible(c * width_mult)
            if small and i == 1:
                stride = 1
            stage = [MBConv(in_ch if j == 0 else out_ch, out_ch, expand, kernel, stride if j == 0 else 1)
                     for j in range(math.ceil(n * depth_mult))]
            layers.append(nn.Sequential(*stage))
            in_ch = out_ch
        last_ch = 4 * in_ch
        layers.append(ConvBNAct(in_ch, last_ch, 1, 1, nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_ch, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


@register_model(
    "efficientnet_b0",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="EfficientNet-B0 (MBConv, depthwise, SiLU, squeeze-and-excitation), 5,288,548 params at width 1.0",
)
def efficientnet_b0(
    *,
    in_channels: int = 3,
    num_classes: int = 1000,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    image_size: int = 224,
) -> nn.Module:
    check_image_size("efficientnet_b0", image_size, minimum=32)
    width_mult = check_width_mult("efficientnet_b0", width_mult)
    depth_mult = check_width_mult("efficientnet_b0", depth_mult, key="depth_mult")
    return EfficientNet(in_channels, num_classes, width_mult, depth_mult, small=image_size <= SMALL_IMAGE_MAX)
