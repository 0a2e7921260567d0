"""SqueezeNet 1.1 (Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters"; v1.1 layout from the authors' repo, as in torchvision: 1,235,496 params).

Fire module: squeeze 1x1 -> (expand 1x1 || expand 3x3), concatenated with ``torch.cat``.
The classifier is a 1x1 conv to ``num_classes`` + ReLU + global average pool.
Small images (``image_size <= 64``): the stem conv uses stride 1, so a 32x32 input ends at
3x3 instead of 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.zoo.image_size import SMALL_IMAGE_MAX, check_image_size
from torchslim.zoo.registry import register_model


class Fire(nn.Module):
    """(N, C, H, W) -> (N, expand1x1 + expand3x3, H, W)."""

    def __init__(self, in_ch: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_ch, squeeze, 1)
        self.squeeze_relu = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_relu = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_relu(self.squeeze(x))
        out1 = self.expand1x1_relu(self.expand1x1(x))
        out3 = self.expand3x3_relu(self.expand3x3(x))
        return torch.cat([out1, out3], dim=1)


class SqueezeNet(nn.Module):
    """(N, C, S, S) -> (N, num_classes)."""

    def __init__(self, in_channels: int, num_classes: int, small: bool) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, stride=1 if small else 2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(0.5), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.flatten = nn.Flatten()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.classifier(self.features(x)))


@register_model(
    "squeezenet",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="SqueezeNet 1.1 (Fire modules with concat, conv classifier), 1,235,496 params",
)
def squeezenet(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224) -> nn.Module:
    check_image_size("squeezenet", image_size, minimum=32)
    return SqueezeNet(in_channels, num_classes, small=image_size <= SMALL_IMAGE_MAX)
