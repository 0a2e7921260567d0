"""Compression-aware training: a nuclear-norm regulariser on each layer's unfolded weight
(Alvarez & Salzmann, NIPS 2017, "Compression-aware Training of Deep Networks").

Objective: loss + strength * sum_l ||W_l||_*, with W_l the (O, I*prod(k)) unfolding of a conv
(the (out, in) matrix of a Linear) and ||.||_* the sum of singular values. Trained by the one
fine-tune helper (:func:`torchslim.distill.finetune.finetune_`, so ``finetune: {distill: kd}``
works here too) in one of two ways:

- "proximal" (their choice; an ``after_step`` hook): after each optimizer step with learning
  rate eta_t, W <- U max(S - eta_t * strength, 0) V^T, the proximal operator of the nuclear
  norm (singular value soft-thresholding, Cai, Candes & Shen 2010). ``prox_every`` = k applies
  it every k steps with threshold k * eta_t * strength, trading SVD cost for a coarser step.
  eta_t follows ``finetune``'s lr and schedule (exact for SGD; with AdamW, or in FitNets' hint
  stage, which has its own lr and length, the threshold uses the main stage's eta_t).
- "penalty" (an ``extra_losses`` term): strength * sum_l ||W_l||_*, differentiated through
  ``torch.linalg.matrix_norm(ord="nuc")``; singular values shrink but rarely reach zero.

The step then reports each layer's rank at ``energy`` before and after, and what the
regulariser cost: its own seconds and the fraction of training time they took. Truncate
afterwards with ``lowrank.svd`` (same unfolding) at an energy or MACs target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerKind, layer_classes, select_layers
from torchslim.distill.finetune import finetune_
from torchslim.errors import UserError
from torchslim.lowrank.config import check_layer_types
from torchslim.lowrank.ranks import spectrum_energy_rank
from torchslim.train import StepContext, steps_per_epoch
from torchslim.train.config import TrainConfig
from torchslim.train.optim import cosine_factor


@dataclass(frozen=True)
class RegularizeConfig(TechniqueConfig):
    """Train per ``finetune`` with the nuclear-norm regulariser (see module docstring).

    ``layer_types``: "conv" (groups == 1) and/or "linear". ``energy``: the fraction of
    squared singular values that defines the reported rank.
    """

    strength: float = 0.05
    mode: Literal["proximal", "penalty"] = "proximal"
    prox_every: int = 1
    energy: float = 0.99
    layer_types: tuple[LayerKind, ...] = ("conv", "linear")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    finetune: TrainConfig = TrainConfig(epochs=3, lr=0.05, weight_decay=5e-4)

    def __post_init__(self) -> None:
        if self.strength < 0:
            raise ValueError(f"field 'strength' must be >= 0, got {self.strength}")
        if self.prox_every < 1:
            raise ValueError(f"field 'prox_every' must be >= 1, got {self.prox_every}")
        if not 0.0 < self.energy <= 1.0:
            raise ValueError(f"field 'energy' must be in (0, 1], got {self.energy}")
        check_layer_types(self.layer_types)
        if self.finetune.epochs < 1:
            raise ValueError(f"field 'finetune.epochs' must be >= 1 (lowrank.regularize trains the model), "
                             f"got {self.finetune.epochs}")

    def needs_data(self) -> str | None:
        return "training"


def regularized_layers(model: nn.Module, config: RegularizeConfig) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in select_layers(model, layer_classes(config.layer_types), config.include, config.exclude)
            if getattr(m, "groups", 1) == 1]


def unfolded(weight: torch.Tensor) -> torch.Tensor:
    """(O, ...) -> (O, prod(...)): the matrix whose nuclear norm is penalised."""
    return weight.reshape(weight.shape[0], -1)


@torch.no_grad()
def prox_nuclear_(weight: torch.Tensor, threshold: float) -> None:
    """W <- U max(S - threshold, 0) V^T on the unfolding of ``weight``, in place."""
    u, s, vh = torch.linalg.svd(unfolded(weight).double(), full_matrices=False)
    weight.copy_(((u * (s - threshold).clamp_min(0)) @ vh).reshape(weight.shape).to(weight.dtype))


def nuclear_norm(weights: list[torch.Tensor]) -> torch.Tensor:
    """sum_l ||unfold(W_l)||_* (differentiable)."""
    return sum(torch.linalg.matrix_norm(unfolded(w), ord="nuc") for w in weights)


def energy_ranks(layers: list[tuple[str, nn.Module]], energy: float) -> dict[str, int]:
    return {n: spectrum_energy_rank(torch.linalg.svdvals(unfolded(m.weight.detach()).double()), energy)
            for n, m in layers}


def step_lr(train: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) under ``train``'s schedule."""
    return train.effective_lr * (cosine_factor(step, total_steps) if train.schedule == "cosine" else 1.0)


@register_technique("lowrank.regularize", RegularizeConfig)
def regularize_(model: nn.Module, config: RegularizeConfig, ctx: Context) -> HandlerResult:
    """Compression-aware training (Alvarez & Salzmann 2017): nuclear norm, proximal or penalty."""
    layers = regularized_layers(model, config)
    if not layers:
        raise UserError("lowrank.regularize: no conv/linear layer selected (check include/exclude/layer_types)")
    if ctx.data is None:
        raise UserError("lowrank.regularize trains the model: it needs training data (a 'data' section)")
    weights = [m.weight for _, m in layers]
    ranks_before = energy_ranks(layers, config.energy)
    train = config.finetune
    total_steps = train.epochs * steps_per_epoch(model, ctx.data.train, train.batch_size, config.name)
    spent = [0.0]

    def proximal(step: StepContext) -> None:
        if (step.step + 1) % config.prox_every:
            return
        start = time.perf_counter()
        threshold = step_lr(train, step.step, total_steps) * config.strength * config.prox_every
        for w in weights:
            prox_nuclear_(w, threshold)
        spent[0] += time.perf_counter() - start

    def penalty(step: StepContext) -> torch.Tensor:
        start = time.perf_counter()
        value = config.strength * nuclear_norm(weights)
        spent[0] += time.perf_counter() - start
        return value

    started = time.perf_counter()
    trained = finetune_(model, train, ctx, extra_losses=[penalty] if config.mode == "penalty" else (),
                        after_step=[proximal] if config.mode == "proximal" else ())
    train_seconds = time.perf_counter() - started
    ranks_after = energy_ranks(layers, config.energy)
    full = {n: min(unfolded(m.weight).shape) for n, m in layers}
    table = {n: {"full_rank": full[n], "rank_before": ranks_before[n], "rank_after": ranks_after[n]} for n, _ in layers}
    details = {
        "energy": config.energy,
        "layers": table,
        "mean_rank_fraction_before": round(sum(ranks_before[n] / full[n] for n in full) / len(full), 4),
        "mean_rank_fraction_after": round(sum(ranks_after[n] / full[n] for n in full) / len(full), 4),
        "train_seconds": round(train_seconds, 2),
        "regularizer_seconds": round(spent[0], 2),
        "regularizer_time_fraction": round(spent[0] / train_seconds, 4) if train_seconds else None,
        "finetune": trained,
    }
    if config.mode == "penalty":
        details["note"] = "regularizer_seconds counts the penalty's forward only, not its backward"
    return HandlerResult(model, [], details)
