"""Builders a user might write, and the wrong things a recipe might name."""

from torch import nn

NOT_CALLABLE = 3


def make_mlp(in_channels: int = 1, num_classes: int = 10, *, hidden: int = 16, image_size: int = 8) -> nn.Module:
    """An MLP over (in_channels, image_size, image_size) images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def make_fixed(hidden: int = 4) -> nn.Module:
    """Takes no in_channels / num_classes: 64 features in, 10 classes out, whatever the data."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.Linear(hidden, 10))


def not_a_module() -> str:
    return "a string"


class Scaled(nn.Module):
    """A user class: a linear layer whose output is scaled by a plain attribute."""

    def __init__(self, features: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(features, classes)
        self.scale = 0.5

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.scale * self.fc(self.flatten(x))


def make_scaled(num_classes: int = 10) -> Scaled:
    return Scaled(64, num_classes)
