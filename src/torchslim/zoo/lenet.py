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
    """conv5x5(6, pad 2)-pool-conv5x5(16)-pool-fc 400-120-84-num_classes; input (N, C, 28, 28).

    ``batch_norm=True`` adds BatchNorm after both convs and the two hidden fc layers (a common
    modern variant; it trains faster and is what the demo folds).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm

        def norm(layer: type[nn.Module], n: int) -> list[nn.Module]:
            return [layer(n)] if batch_norm else []

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            *norm(nn.BatchNorm2d, 6),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            *norm(nn.BatchNorm2d, 16),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            *norm(nn.BatchNorm1d, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            *norm(nn.BatchNorm1d, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model(
    "lenet5",
    input_shape=(1, 28, 28),
    num_classes=10,
    description="LeNet-5 (2 conv + 3 fc, ReLU, max-pool), 61,706 params; batch_norm=True adds BN",
)
def lenet5(*, in_channels: int = 1, num_classes: int = 10, batch_norm: bool = False) -> nn.Module:
    return LeNet5(in_channels, num_classes, batch_norm)
