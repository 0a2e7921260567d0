"""Blocks shared by the EfficientNet and MobileNetV3 files: conv-BN-activation and
squeeze-and-excitation (Hu et al. 2018, "Squeeze-and-Excitation Networks")."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Activation = Callable[[], nn.Module]


class ConvBNAct(nn.Sequential):
    """Conv (no bias) - BN - activation (none if ``act`` is None); ``groups == channels`` is depthwise."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int,
        act: Activation | None,
        groups: int = 1,
        bn_eps: float = 1e-5,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=bn_eps),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """x * gate(fc2(act(fc1(mean_hw(x))))): (N, C, H, W) -> (N, C, H, W).

    fc1/fc2 are 1x1 convs with bias (C -> squeeze -> C), as in torchvision; the gate is a
    per-channel scale in (0, 1), broadcast over H and W by an elementwise multiply.
    """

    def __init__(self, channels: int, squeeze: int, act: Activation, gate: Activation) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))
        return x * scale


def init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet/VGG initialisation: Kaiming-normal (fan_out) convs, zero conv biases,
    unit BN, N(0, 0.01) linears with zero bias (the zoo's MobileNetV2, VGG and the SE nets)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
