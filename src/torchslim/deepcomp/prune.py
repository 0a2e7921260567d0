"""Unstructured magnitude pruning with masked retraining (Han et al. 2015, "Learning both
Weights and Connections for Efficient Neural Networks"; stage 1 of Deep Compression).

Which weights: the smallest |w| per layer. How many (``criterion``):
- ``std``: Han's rule, threshold = quality x std(W_l) per layer; the fraction of the
  layer's weights under that threshold at the start of the step becomes its target sparsity
  s_l (so a schedule can ramp towards it);
- ``uniform``: s_l = ``sparsity`` (or ``layer_sparsity[l]``);
- ``global``: one magnitude threshold over all selected layers removing ``sparsity`` of
  their weights in total, so large redundant layers give up more.

When (``schedule``), with pruned weights held at exactly zero by gradient masking and an
``after_step`` hook of :func:`torchslim.train.fit`:
- ``oneshot``: prune to the target, then retrain ``epochs``;
- ``iterative``: ``rounds`` prune -> retrain cycles (Han et al. 2015, s. 3.3), round r pruning
  to fraction 1 - (1 - r/R)^3 of the target and retraining epochs/R;
- ``agp``: automated gradual pruning (Zhu & Gupta 2017, eq. 1) inside one training run:
  s_t = s_f (1 - (1 - t / T)^3) at ``rounds`` evenly spaced steps over the first
  ``ramp_fraction`` of the run (T steps), then fine-tuning at the final mask.
Masks only grow: a pruned weight (exactly 0) has the smallest magnitude and stays pruned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.deepcomp.common import apply_masks, check_names, mask_hooks, require_data, retrain, weight_layers
from torchslim.errors import UserError


@dataclass(frozen=True)
class PruneConfig(TechniqueConfig):
    """Fractions are of each selected layer's weights (biases are never pruned)."""

    criterion: Literal["std", "uniform", "global"] = "std"
    quality: float = 1.0
    layer_quality: dict[str, float] = field(default_factory=dict)
    sparsity: float = 0.9
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    schedule: Literal["oneshot", "iterative", "agp"] = "agp"
    rounds: int = 8
    ramp_fraction: float = 0.6
    epochs: int = 4
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 64
    types: tuple[str, ...] = ("linear", "conv")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"field 'sparsity' must be in [0, 1), got {self.sparsity}")
        if any(not 0.0 <= s < 1.0 for s in self.layer_sparsity.values()):
            raise ValueError("field 'layer_sparsity': every value must be in [0, 1)")
        if self.quality < 0 or any(q < 0 for q in self.layer_quality.values()):
            raise ValueError("field 'quality'/'layer_quality' must be >= 0")
        if self.rounds < 1 or self.epochs < 0:
            raise ValueError("fields 'rounds' >= 1 and 'epochs' >= 0 are required")
        if not 0.0 < self.ramp_fraction <= 1.0:
            raise ValueError(f"field 'ramp_fraction' must be in (0, 1], got {self.ramp_fraction}")


def agp_fraction(progress: float) -> float:
    """Zhu & Gupta 2017, eq. 1 with s_i = 0: the share of the final sparsity at ``progress``."""
    progress = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - progress) ** 3


def global_counts(weights: dict[str, torch.Tensor], total: int) -> dict[str, int]:
    """How many weights each layer loses when the ``total`` globally smallest |w| are removed."""
    names = list(weights)
    mags = torch.cat([weights[n].detach().abs().reshape(-1) for n in names])
    owner = torch.cat([torch.full((weights[n].numel(),), i) for i, n in enumerate(names)])
    chosen = owner[torch.argsort(mags, stable=True)[:total]]
    counts = torch.bincount(chosen, minlength=len(names))
    return {n: int(counts[i]) for i, n in enumerate(names)}


def magnitude_mask(weight: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean keep-mask removing exactly the ``count`` smallest |w| (ties by position)."""
    flat = weight.detach().abs().reshape(-1)
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:count]] = False
    return keep.reshape(weight.shape)


def layer_targets(config: PruneConfig, layers: dict[str, nn.Module]) -> dict[str, float]:
    """Final sparsity per layer for the per-layer criteria (std, uniform)."""
    if config.criterion == "uniform":
        return {n: config.layer_sparsity.get(n, config.sparsity) for n in layers}
    targets = {}
    for name, layer in layers.items():
        w = layer.weight.detach()
        threshold = config.layer_quality.get(name, config.quality) * w.float().std().item()
        targets[name] = (w.abs() < threshold).float().mean().item()  # Han et al. 2015: |w| < q * std
    return targets


@register_technique("deepcomp.prune", PruneConfig)
def prune_(model: nn.Module, config: PruneConfig, ctx: Context) -> HandlerResult:
    """Unstructured magnitude pruning (Han 2015 std threshold, global, AGP) with masked retraining."""
    selected = weight_layers(model, config.types, config.include, config.exclude)
    check_names(selected, config.layer_sparsity, "layer_sparsity")
    check_names(selected, config.layer_quality, "layer_quality")
    layers = dict(selected)
    require_data(ctx, config.epochs)
    targets = None if config.criterion == "global" else layer_targets(config, layers)
    masks: dict[str, torch.Tensor] = {}

    def prune_to(fraction: float) -> None:
        weights = {n: m.weight for n, m in layers.items()}
        if targets is None:
            total = sum(w.numel() for w in weights.values())
            counts = global_counts(weights, round(fraction * config.sparsity * total))
        else:
            counts = {n: round(fraction * targets[n] * w.numel()) for n, w in weights.items()}
        for name, w in weights.items():
            masks[name] = magnitude_mask(w, counts[name]) & (w.detach() != 0)
        apply_masks(masks, layers)

    warnings: list[str] = []
    history: list[float] = []
    common = dict(lr=config.lr, optimizer=config.optimizer, momentum=config.momentum,
                  weight_decay=config.weight_decay, batch_size=config.batch_size)
    if config.schedule == "agp" and config.epochs > 0:
        steps = config.epochs * math.ceil(len(ctx.data.train) / config.batch_size)
        ramp = max(1, round(config.ramp_fraction * steps))
        events = {max(1, round(j * ramp / config.rounds)): agp_fraction(j / config.rounds)
                  for j in range(1, config.rounds + 1)}
        prune_to(0.0)  # masks of already-zero weights (an earlier pruning step) stay enforced
        handles, enforce = mask_hooks(masks, layers)

        def agp_step(step: object) -> None:
            fraction = events.get(step.step + 1)
            if fraction is not None:
                prune_to(fraction)
            enforce(step)

        try:
            history = retrain(model, ctx, epochs=config.epochs, after_step=[agp_step], **common)
        finally:
            for h in handles:
                h.remove()
    else:
        rounds = config.rounds if config.schedule == "iterative" else 1
        if config.schedule == "iterative" and config.epochs and config.epochs < rounds:
            raise UserError(f"field 'epochs' ({config.epochs}) must be >= 'rounds' ({rounds}) for iterative pruning")
        if config.schedule == "agp":
            warnings.append("agp schedule with epochs: 0 prunes once, without retraining")
        for r in range(1, rounds + 1):
            prune_to(agp_fraction(r / rounds) if rounds > 1 else 1.0)
            epochs = config.epochs // rounds + (config.epochs % rounds if r == rounds else 0)
            handles, enforce = mask_hooks(masks, layers)
            try:
                history += retrain(model, ctx, epochs=epochs, after_step=[enforce], **common)
            finally:
                for h in handles:
                    h.remove()
    apply_masks(masks, layers)
    per_layer = {n: {"weights": m.numel(), "kept": int(m.sum()), "density_pct": round(100 * m.float().mean().item(), 2)}
                 for n, m in masks.items()}
    total = sum(v["weights"] for v in per_layer.values())
    kept = sum(v["kept"] for v in per_layer.values())
    return HandlerResult(model, warnings, {
        "layers": per_layer, "weights": total, "kept": kept,
        "density_pct": round(100 * kept / max(total, 1), 2),
        "pruning_rate": round(total / max(kept, 1), 2),
        "val_accuracy": history,
    })
