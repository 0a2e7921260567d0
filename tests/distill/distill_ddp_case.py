"""Shared by test_ddp.py and ddp_worker.py: a tiny teacher / student pair and the distill_
arguments, so one process with batch 2B can be compared with 2 processes of batch B."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

PER_PROCESS_BATCH = 8
CASES = {
    # dropout 0: each process would otherwise draw its own masks
    "adversarial": {"lr": 0.01, "feature_dropout": 0.0, "discriminator_hidden": (8,)},
    "fitnets": {"lr": 0.05, "hint_layer": "1", "guided_layer": "1", "hint_epochs": 1},
}


def make_case() -> tuple[nn.Module, nn.Module, TensorDataset]:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 3))
    student = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x = torch.randn(64, 5)
    return teacher, student, TensorDataset(x, (x[:, 0] > 0).long())
