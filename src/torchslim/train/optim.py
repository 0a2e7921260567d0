"""Optimizer and per-step learning-rate schedule, by name."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from torchslim.errors import UserError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")


def make_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """SGD with momentum (coupled L2 weight decay, applied to every parameter) or AdamW
    (decoupled weight decay, Loshchilov & Hutter 2019; default betas, momentum unused)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise UserError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def cosine_factor(step: int, total_steps: int) -> float:
    """lr multiplier after ``step`` optimizer steps: (1 + cos(pi * step / total_steps)) / 2
    (SGDR without restarts, Loshchilov & Hutter 2017); 1 at step 0, 0 at total_steps."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def make_schedule(optimizer: torch.optim.Optimizer, name: str, *, total_steps: int) -> LambdaLR:
    """Stepped once per optimizer step. The closed form is used directly (LambdaLR) rather
    than CosineAnnealingLR, whose recursive update drifts from it."""
    if name == "cosine":
        return LambdaLR(optimizer, lambda step: cosine_factor(step, total_steps))
    if name == "constant":
        return LambdaLR(optimizer, lambda step: 1.0)
    raise UserError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
