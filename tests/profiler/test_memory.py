"""Peak activation memory against live ranges worked out by hand."""

from __future__ import annotations

import torch
from torch import nn

from torchslim.profiler import profile_model

FLOAT = 4  # bytes


def test_peak_of_a_linear_chain():
    # x [4,10] -> fc1 -> a [4,20] -> relu -> b [4,20] -> fc2 -> y [4,5]
    # live at each op: fc1 {x, a}, relu {a, b}, fc2 {b, y}; weights never count
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    stats = profile_model(model, torch.randn(4, 10))
    x, a, b, y = 4 * 10 * FLOAT, 4 * 20 * FLOAT, 4 * 20 * FLOAT, 4 * 5 * FLOAT
    assert stats.peak_activation_bytes == max(x + a, a + b, b + y) == 640


def test_in_place_and_views_allocate_nothing():
    # x [2,3,8,8] -> conv -> a [2,4,8,8] -> relu_ (in place) -> view -> fc -> y [2,10]
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(256, 10)
    )
    stats = profile_model(model, torch.randn(2, 3, 8, 8))
    x, a, y = 2 * 3 * 64 * FLOAT, 2 * 4 * 64 * FLOAT, 2 * 10 * FLOAT
    assert stats.peak_activation_bytes == max(x + a, a + y) == 3584


class _Skip(nn.Module):
    """The input stays live across the branch until the add reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 8)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) + x


def test_skip_connection_keeps_input_live():
    stats = profile_model(_Skip(), torch.randn(1, 8))
    x, h, r, o, out = 8 * FLOAT, 32 * FLOAT, 32 * FLOAT, 8 * FLOAT, 8 * FLOAT
    # fc1 {x,h}; relu {x,h,r}; fc2 {x,r,o}; add {x,o,out}
    assert stats.peak_activation_bytes == max(x + h, x + h + r, x + r + o, x + o + out) == 288


class _DataDependent(nn.Module):
    """Needs real values (``.item()``): profiled by a real forward, same counts."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        y = self.fc(x)
        return y * 2 if y.sum().item() > -1e9 else y


def test_data_dependent_model_falls_back_to_real_execution():
    stats = profile_model(_DataDependent(), torch.randn(3, 6))
    assert stats.execution == "real"
    assert stats.macs == 3 * 6 * 6
    assert stats.other_flops == {"bias": 18, "elementwise": 18, "reduction": 18}
    x = y = doubled = 3 * 6 * FLOAT
    total = FLOAT
    # fc {x, y}; sum {y, total}; item {total}; mul {y, doubled}
    assert stats.peak_activation_bytes == max(x + y, y + total, y + doubled) == 144
    assert stats.layers[-1].name == "" and stats.layers[-1].calls == 1
