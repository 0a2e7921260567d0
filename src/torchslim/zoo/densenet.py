"""DenseNet-BC for 32x32 inputs (Huang et al. 2017, "Densely Connected Convolutional Networks").

Three dense blocks of (depth - 4) / 6 bottleneck layers, each BN-ReLU-1x1(4k)-BN-ReLU-3x3(k)
whose k new channels are concatenated (``torch.cat``) to its input; transitions compress the
channels by ``compression`` and halve the resolution with 2x2 average pooling.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.zoo.registry import register_model


class DenseLayer(nn.Module):
    """(N, C, H, W) -> (N, C + growth_rate, H, W): input concatenated with its new features."""

    def __init__(self, in_ch: int, growth_rate: int) -> None:
        super().__init__()
        inter = 4 * growth_rate
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_ch, inter, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inter)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(inter, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.bn1(x)))
        out = self.conv2(self.relu2(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (channel compression)-2x2 average pool."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.AvgPool2d(2, stride=2),
        )


class DenseNet(nn.Module):
    """(N, C, 32, 32) -> (N, num_classes); stem 3x3 conv to 2k channels, 3 dense blocks."""

    def __init__(
        self, in_channels: int, num_classes: int, depth: int, growth_rate: int, compression: float
    ) -> None:
        super().__init__()
        n = (depth - 4) // 6
        channels = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i in range(3):
            block = []
            for _ in range(n):
                block.append(DenseLayer(channels, growth_rate))
                channels += growth_rate
            stages.append(nn.Sequential(*block))
            if i < 2:
                out_ch = int(math.floor(channels * compression))
                stages.append(Transition(channels, out_ch))
                channels = out_ch
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.conv1(x))
        x = self.relu(self.bn(x))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model(
    "densenet",
    input_shape=(3, 32, 32),
    num_classes=10,
    description="DenseNet-BC-40 (growth 12, compression 0.5, torch.cat concatenation)",
)
def densenet(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    depth: int = 40,
    growth_rate: int = 12,
    compression: float = 0.5,
) -> nn.Module:
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise UserError(f"model 'densenet': depth must be 6n+4 with n >= 1, got {depth!r}")
    if not isinstance(growth_rate, int) or growth_rate < 1:
        raise UserError(f"model 'densenet': growth_rate must be a positive integer, got {growth_rate!r}")
    if not 0 < compression <= 1:
        raise UserError(f"model 'densenet': compression must be in (0, 1], got {compression!r}")
    return DenseNet(in_channels, num_classes, depth, growth_rate, compression)
