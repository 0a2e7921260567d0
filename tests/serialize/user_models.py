"""A user's own model, importable as ``tests.serialize.user_models`` (classes by import path)."""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """x + scale * body(x), with the scale a hard-coded attribute."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = 0.5
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.body(x)


class Net(nn.Module):
    """Stem, residual blocks in a ModuleList, heads in a ModuleDict chosen by attribute."""

    class Head(nn.Module):  # a nested qualname: Net.Head
        def __init__(self, features: int, classes: int) -> None:
            super().__init__()
            self.fc = nn.Linear(features, classes)
            self.register_buffer("temperature", torch.tensor(2.0))
            self.dims = (2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.mean(dim=self.dims)) / self.temperature

    def __init__(self, width: int = 8, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.blocks = nn.ModuleList(Residual(width) for _ in range(blocks))
        self.heads = nn.ModuleDict({"main": Net.Head(width, 10), "aux": Net.Head(width, 3)})
        self.use = "main"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.heads[self.use](x)


class OptionalBias(nn.Module):
    """Empty slots, as custom layers leave them: ``register_parameter("bias", None)``."""

    def __init__(self, features: int, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features))
        self.register_parameter("bias", nn.Parameter(torch.zeros(features)) if bias else None)
        self.register_buffer("shift", None)
        self.register_module("post", None)
        self.extra = None  # a plain attribute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.weight
        for optional in (self.bias, self.shift):
            x = x if optional is None else x + optional
        return x if self.post is None else self.post(x)


class ScaledConv(nn.Conv2d):
    """A subclass of an allowed torch layer with its own forward."""

    def __init__(self, *args: object, gain: float = 2.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.gain


class WithConfig(nn.Module):
    """State a spec cannot hold: a dict attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.config = {"act": "relu"}


class WithPrivate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self._gain = 3.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self._gain


class WithNonPersistent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.register_buffer("offset", torch.ones(2), persistent=False)


class Bag(nn.Module):
    """Holds whatever plain attributes a test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 1)
