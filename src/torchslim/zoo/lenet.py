"""LeNets for 28x28 MNIST-style inputs (LeCun et al. 1998, "Gradient-based learning applied
to document recognition"); LeNet-300-100 is the fully connected baseline of Han et al. 2015."""

from __future__ import annotations

import torch
from torch import nn

from torchslim.zoo.registry import register_model


@register_model(
    "lenet300",
    input_shape=(1, 28, 28),
    num_classes=10,
    description="LeNet-300-100 MLP (784-300-100-10, ReLU), 266,610 params",
)
def lenet300(*, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """(N, C, 28, 28) -> (N, num_classes) through Linear 784C-300-100-num_classes."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * 28 * 28, 300),
        nn.ReLU(),
        nn.Linear(300, 100),
        nn.ReLU(),
        nn.Linear(100, num_classes),
    )


class LeNet5(nn.Module):
    """conv5x5(6, pad 2)-pool-conv5x5(16)-pool-fc 400-120-84-num_classes; input (N, C, 28, 28)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model(
    "lenet5",
    input_shape=(1, 28, 28),
    num_classes=10,
    description="LeNet-5 (2 conv + 3 fc, ReLU, max-pool), 61,706 params",
)
def lenet5(*, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return LeNet5(in_channels, num_classes)
