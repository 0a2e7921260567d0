"""The shared DDP test case: a tiny MLP (no BatchNorm) and 96 random examples."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

N_EXAMPLES = 96
PER_PROCESS_BATCH = 8  # 96 / (2 * 8) = 6 steps per epoch, every batch full
FIT_ARGS = dict(epochs=2, lr=0.1, momentum=0.9, weight_decay=1e-3, seed=3, progress=False)


def make_case() -> tuple[nn.Module, TensorDataset]:
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(N_EXAMPLES, 12, generator=gen)
    y = torch.randint(0, 4, (N_EXAMPLES,), generator=gen)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
    return model, TensorDataset(x, y)
