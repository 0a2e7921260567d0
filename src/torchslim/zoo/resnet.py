"""ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition").

CIFAR ResNet-6n+2 (Sec. 4.2) with 1x1 conv + BN projection shortcuts where the shape
changes (option B), and ImageNet ResNet-50 in torchvision's "v1.5" layout (stride on the
3x3 conv of the bottleneck), which has exactly torchvision's 25,557,032 parameters.
Residual adds are out-of-place so torch.export and fx see a plain ``add``.
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.zoo.image_size import check_image_size, check_width_mult
from torchslim.zoo.registry import register_model


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class BasicBlock(nn.Module):
    """3x3-BN-ReLU-3x3-BN + shortcut, then ReLU; (N, in, H, W) -> (N, planes, H/s, W/s)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.downsample = _projection(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """1x1-3x3(stride)-1x1(x4) with BN/ReLU + shortcut; (N, in, H, W) -> (N, 4*planes, H/s, W/s)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu3 = nn.ReLU()
        self.downsample = _projection(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: stem 3x3(16), stages of 16/32/64 channels, n blocks each."""

    def __init__(self, depth: int, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, n, stride=1)
        self.layer2 = self._stage(16, 32, n, stride=2)
        self.layer3 = self._stage(32, 64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)
        _init_weights(self)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model(
    "resnet20",
    input_shape=(3, 32, 32),
    num_classes=10,
    description="CIFAR ResNet-20 (3x3 basic blocks, 1x1 projection shortcuts), 272,474 params",
)
def resnet20(*, in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    return CifarResNet(20, in_channels, num_classes)


@register_model(
    "resnet56",
    input_shape=(3, 32, 32),
    num_classes=10,
    description="CIFAR ResNet-56 (9 basic blocks per stage, 1x1 projection shortcuts), 855,770 params",
)
def resnet56(*, in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    return CifarResNet(56, in_channels, num_classes)


class ResNet(nn.Module):
    """ImageNet ResNet with bottlenecks: stem 7x7/2 + maxpool/2, four stages, global pool, fc."""

    def __init__(self, layers: list[int], in_channels: int = 3, num_classes: int = 1000,
                 width_mult: float = 1.0) -> None:
        super().__init__()
        stem = max(1, round(64 * width_mult))
        self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_planes = stem
        stages = []
        widths = [max(1, round(w * width_mult)) for w in (64, 128, 256, 512)]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            stage = [Bottleneck(in_planes, planes, stride)]
            in_planes = planes * Bottleneck.expansion
            stage += [Bottleneck(in_planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model(
    "resnet50",
    input_shape=(3, 224, 224),
    num_classes=1000,
    description="ImageNet ResNet-50 v1.5 (bottlenecks, stride on 3x3), 25,557,032 params",
)
def resnet50(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
             width_mult: float = 1.0) -> nn.Module:
    """``image_size`` only sets the recorded input shape (global pooling accepts any size >= 32).
    ``width_mult`` scales every stage's width (the same topology, e.g. 0.25 for fast tests)."""
    check_image_size("resnet50", image_size, minimum=32)
    return ResNet([3, 4, 6, 3], in_channels, num_classes, check_width_mult("resnet50", width_mult))

