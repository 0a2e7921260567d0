"""VGG with BatchNorm (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for
Large-Scale Image Recognition"; BN as in torchvision's ``vgg*_bn``).

``image_size > 64`` gives the ImageNet layout of torchvision (AdaptiveAvgPool2d(7) and the
25088-4096-4096 classifier with ReLU + Dropout; vgg16 has exactly 138,365,992 params).
``image_size <= 64`` gives the common CIFAR variant: the same conv features, then global
average pooling and one Linear(512, num_classes).
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.zoo.blocks import init_weights
from torchslim.zoo.image_size import SMALL_IMAGE_MAX, check_image_size, check_width_mult
from torchslim.zoo.registry import register_model

# Conv widths per configuration ("M" = 2x2 max-pool), Table 1 of the paper.
_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """conv3x3-BN-ReLU stacks with 5 max-pools; (N, C, S, S) -> (N, num_classes), S >= 32."""

    def __init__(self, cfg: list[int | str], in_channels: int, num_classes: int, small: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                # Conv bias kept despite BN, as in torchvision (part of the reference count).
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                channels = v
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        if small:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Linear(channels, num_classes))
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Linear(channels * 7 * 7, 4096),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(4096, 4096),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(4096, num_classes),
            )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def _vgg(name: str, cfg: str, in_channels: int, num_classes: int, image_size: int, width_mult: float) -> nn.Module:
    """``width_mult`` scales every conv width (the same topology, e.g. 0.25 for fast tests)."""
    check_image_size(name, image_size, minimum=32)
    width_mult = check_width_mult(name, width_mult)
    widths = [v if v == "M" else max(1, round(v * width_mult)) for v in _CFGS[cfg]]
    return VGG(widths, in_channels, num_classes, small=image_size <= SMALL_IMAGE_MAX)


@register_model(
    "vgg11",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="VGG-11 with BN (config A); image_size<=64 gives the CIFAR head",
)
def vgg11(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
          width_mult: float = 1.0) -> nn.Module:
    return _vgg("vgg11", "A", in_channels, num_classes, image_size, width_mult)


@register_model(
    "vgg16",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="VGG-16 with BN (config D), 138,365,992 params; image_size<=64 gives the CIFAR head",
)
def vgg16(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
          width_mult: float = 1.0) -> nn.Module:
    return _vgg("vgg16", "D", in_channels, num_classes, image_size, width_mult)
