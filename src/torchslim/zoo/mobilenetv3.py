"""MobileNetV3 (Howard et al. 2019, "Searching for MobileNetV3"), Large by default, Small with
``variant="small"``.

Inverted residuals (1x1 expand - kxk depthwise - optional squeeze-and-excitation - 1x1 linear
project, + x when shapes match) with ReLU in the early blocks and hardswish in the late ones,
hardsigmoid SE gates with ``make_divisible(expanded / 4)`` squeeze channels and a ReLU
between the SE convs, a hardswish stem and head (Tables 1 and 2 of the paper). Same layout
and parameter counts as torchvision's ``mobilenet_v3_large`` / ``mobilenet_v3_small``
(5,483,032 / 2,542,856 at width 1.0), BN eps 1e-3 as there. ``width_mult`` scales every
width, rounded to multiples of 8. Small images (``image_size <= 64``): the stem and the first
stride-2 block use stride 1 (total downsampling 8), as in the zoo's MobileNetV2.
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.zoo.blocks import Activation, ConvBNAct, SqueezeExcitation, init_weights
from torchslim.zoo.image_size import SMALL_IMAGE_MAX, check_image_size, check_width_mult
from torchslim.zoo.mobilenet import make_divisible
from torchslim.zoo.registry import register_model

_BN_EPS = 1e-3
# (kernel, expanded channels, output channels, SE, activation, stride) per block; Table 1 (Large)
# and Table 2 (Small); "RE" = ReLU, "HS" = hardswish.
_LARGE = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]
_SMALL = [
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
]
# Per variant: block table, width of the classifier's hidden layer.
_VARIANTS = {"large": (_LARGE, 1280), "small": (_SMALL, 1024)}
_ACTIVATIONS: dict[str, Activation] = {"RE": nn.ReLU, "HS": nn.Hardswish}


class InvertedResidualV3(nn.Module):
    """(N, in, H, W) -> (N, out, H/s, W/s): expand (act) - depthwise (act) - [SE] - project."""

    def __init__(
        self, in_ch: int, kernel: int, hidden: int, out_ch: int, use_se: bool, act: Activation, stride: int
    ) -> None:
        super().__init__()
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if hidden != in_ch:
            layers.append(ConvBNAct(in_ch, hidden, 1, 1, act, bn_eps=_BN_EPS))
        layers.append(ConvBNAct(hidden, hidden, kernel, stride, act, groups=hidden, bn_eps=_BN_EPS))
        if use_se:
            layers.append(SqueezeExcitation(hidden, make_divisible(hidden / 4), nn.ReLU, nn.Hardsigmoid))
        layers.append(ConvBNAct(hidden, out_ch, 1, 1, None, bn_eps=_BN_EPS))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.block(x)
        return self.block(x)


class MobileNetV3(nn.Module):
    """(N, C, S, S) -> (N, num_classes)."""

    def __init__(
        self, in_channels: int, num_classes: int, variant: str, width_mult: float, small: bool
    ) -> None:
        super().__init__()
        table, hidden_fc = _VARIANTS[variant]
        in_ch = make_divisible(16 * width_mult)
        layers: list[nn.Module] = [
            ConvBNAct(in_channels, in_ch, 3, 1 if small else 2, nn.Hardswish, bn_eps=_BN_EPS)
        ]
        first_downsample = True
        for kernel, expanded, out, use_se, act, stride in table:
            if small and stride == 2 and first_downsample:
                stride, first_downsample = 1, False
            out_ch = make_divisible(out * width_mult)
            layers.append(InvertedResidualV3(
                in_ch, kernel, make_divisible(expanded * width_mult), out_ch, use_se, _ACTIVATIONS[act], stride
            ))
            in_ch = out_ch
        last_ch = 6 * in_ch
        layers.append(ConvBNAct(in_ch, last_ch, 1, 1, nn.Hardswish, bn_eps=_BN_EPS))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        hidden_fc = make_divisible(hidden_fc * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(last_ch, hidden_fc), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(hidden_fc, num_classes)
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


@register_model(
    "mobilenetv3",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="MobileNetV3-Large (hardswish, hardsigmoid SE, depthwise), 5,483,032 params; variant='small': 2,542,856",
)
def mobilenetv3(
    *,
    in_channels: int = 3,
    num_classes: int = 1000,
    variant: str = "large",
    width_mult: float = 1.0,
    image_size: int = 224,
) -> nn.Module:
    if variant not in _VARIANTS:
        raise UserError(f"model 'mobilenetv3': variant must be one of {sorted(_VARIANTS)}, got {variant!r}")
    check_image_size("mobilenetv3", image_size, minimum=32)
    width_mult = check_width_mult("mobilenetv3", width_mult)
    return MobileNetV3(in_channels, num_classes, variant, width_mult, small=image_size <= SMALL_IMAGE_MAX)
