"""Compression-aware training: a nuclear-norm regulariser on each layer's unfolded weight
(Alvarez & Salzmann, NIPS 2017, "Compression-aware Training of Deep Networks").

Objective: loss + strength * sum_l ||W_l||_*, with W_l the (O, I*kh*kw) unfolding of a conv
(the (out, in) matrix of a Linear) and ||.||_* the sum of singular values. Two ways to train it
through :func:`torchslim.train.fit`:

- "proximal" (their choice; an ``after_step`` hook): after each SGD step with learning rate
  eta_t, W <- U max(S - eta_t * strength, 0) V^T, the proximal operator of the nuclear norm
  (singular value soft-thresholding, Cai, Candes & Shen 2010). ``prox_every`` = k applies it
  every k steps with threshold k * eta_t * strength, trading SVD cost for a coarser step.
- "penalty" (an ``extra_losses`` term): strength * sum_l ||W_l||_*, differentiated through
  ``torch.linalg.matrix_norm(ord="nuc")``; singular values shrink but rarely reach zero.

The step then reports each layer's rank at ``energy`` before and after, and what the
regulariser cost: its own seconds and the fraction of training time they took. Truncate
afterwards with ``lowrank.svd`` (same unfolding) at an energy or MACs target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import select_layers
from torchslim.errors import UserError
from torchslim.lowrank._common import spectrum_energy_rank


@dataclass(frozen=True)
class RegularizeConfig(TechniqueConfig):
    """Train ``epochs`` on data.train with the nuclear-norm regulariser (see module docstring).

    ``layer_types``: "conv" (Conv2d, groups == 1) and/or "linear". ``energy``: the fraction of
    squared singular values that defines the reported rank.
    """

    strength: float = 0.05
    mode: Literal["proximal", "penalty"] = "proximal"
    epochs: int = 3
    lr: float = 0.05
    batch_size: int = 64
    weight_decay: float = 5e-4
    prox_every: int = 1
    energy: float = 0.99
    layer_types: tuple[str, ...] = ("conv", "linear")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.strength < 0:
            raise ValueError(f"field 'strength' must be >= 0, got {self.strength}")
        if self.epochs < 1 or self.prox_every < 1:
            raise ValueError("fields 'epochs' and 'prox_every' must be >= 1")
        if not 0.0 < self.energy <= 1.0:
            raise ValueError(f"field 'energy' must be in (0, 1], got {self.energy}")
        if not self.layer_types or any(t not in ("conv", "linear") for t in self.layer_types):
            raise ValueError(f"field 'layer_types' must list 'conv' and/or 'linear', got {list(self.layer_types)}")


def regularized_layers(model: nn.Module, config: RegularizeConfig) -> list[tuple[str, nn.Module]]:
    types = tuple(t for key, t in (("linear", nn.Linear), ("conv", nn.Conv2d)) if key in config.layer_types)
    return [(n, m) for n, m in select_layers(model, types, config.include, config.exclude)
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


@register_technique("lowrank.regularize", RegularizeConfig)
def regularize_(model: nn.Module, config: RegularizeConfig, ctx: Context) -> HandlerResult:
    """Compression-aware training (Alvarez & Salzmann 2017): nuclear norm, proximal or penalty."""
    from torchslim.train import fit
    from torchslim.train.optim import cosine_factor

    if ctx.data is None:
        raise UserError("lowrank.regularize trains the model: the recipe needs a 'data' section")
    layers = regularized_layers(model, config)
    if not layers:
        raise UserError("no Conv2d/Linear layer selected (check include/exclude/layer_types)")
    weights = [m.weight for _, m in layers]
    ranks_before = energy_ranks(layers, config.energy)
    steps_per_epoch = -(-len(ctx.data.train) // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    spent = [0.0]

    def proximal(step: Any) -> None:
        if (step.step + 1) % config.prox_every:
            return
        start = time.perf_counter()
        # eta_t of the step just taken: fit's cosine schedule evaluated at that step.
        threshold = config.lr * cosine_factor(step.step, total_steps) * config.strength * config.prox_every
        for w in weights:
            prox_nuclear_(w, threshold)
        spent[0] += time.perf_counter() - start

    def penalty(step: Any) -> torch.Tensor:
        start = time.perf_counter()
        value = config.strength * nuclear_norm(weights)
        spent[0] += time.perf_counter() - start
        return value

    history = fit(model, ctx.data.train, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                  weight_decay=config.weight_decay, seed=ctx.seed, progress=ctx.progress,
                  extra_losses=[penalty] if config.mode == "penalty" else (),
                  after_step=[proximal] if config.mode == "proximal" else ())
    train_seconds = sum(history.epoch_seconds)
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
        "train_loss": history.train_loss,
    }
    if config.mode == "penalty":
        details["note"] = "regularizer_seconds counts the penalty's forward only, not its backward"
    return HandlerResult(model, [], details)
