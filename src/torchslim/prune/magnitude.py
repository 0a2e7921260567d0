"""Unstructured magnitude pruning with masked retraining (Han et al. 2015, "Learning both
Weights and Connections for Efficient Neural Networks"; stage 1 of Deep Compression).

Which weights: the smallest |w| per layer. How many (``criterion``):
- ``std``: Han's rule, threshold = quality x std(W_l) per layer; the fraction of the
  layer's weights under that threshold at the start of the step becomes its target sparsity
  s_l (so a schedule can ramp towards it);
- ``uniform``: s_l = ``sparsity`` (or ``layer_sparsity[l]``);
- ``global``: one magnitude threshold over all selected layers removing ``sparsity`` of
  their weights in total, so large redundant layers give up more.

When (``schedule``), with pruned weights held at exactly +0.0 by gradient masking and an
``after_step`` hook (:mod:`torchslim.prune.masks`) during the nested ``finetune`` run:
- ``oneshot``: prune to the target, then fine-tune;
- ``iterative``: ``rounds`` prune -> fine-tune cycles (Han et al. 2015, s. 3.3), round r pruning
  to fraction 1 - (1 - r/R)^3 of the target and training finetune.epochs / R epochs;
- ``agp``: automated gradual pruning (Zhu & Gupta 2017, eq. 1) inside one training run:
  s_t = s_f (1 - (1 - t / T)^3) at ``rounds`` evenly spaced steps over the first
  ``ramp_fraction`` of the run (T optimizer steps), then fine-tuning at the final mask.
Masks only grow: a pruned weight (exactly 0) has the smallest magnitude and stays pruned.

``sparsity`` is the fraction of the selected layers' weights set to zero (the s_f of both
papers); the reduction factor of those weights is 1 / (1 - sparsity), reported as
``pruning_rate``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerKind, layer_classes, select_layers, unknown_name_error
from torchslim.distill.finetune import finetune_
from torchslim.prune.masks import apply_masks, enforced_masks
from torchslim.train import StepContext, steps_per_epoch
from torchslim.train.config import TrainConfig


@dataclass(frozen=True)
class PruneMagnitudeConfig(TechniqueConfig):
    """Fractions are of each selected layer's weights (biases are never pruned).
    ``finetune``: the retraining run (``epochs: 0``: prune without retraining)."""

    keeps_layer_names: ClassVar[bool] = True  # layers keep their names (no containers)

    criterion: Literal["std", "uniform", "global"] = "std"
    quality: float = 1.0
    layer_quality: dict[str, float] = field(default_factory=dict)
    sparsity: float = 0.9
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    schedule: Literal["oneshot", "iterative", "agp"] = "agp"
    rounds: int = 8
    ramp_fraction: float = 0.6
    finetune: TrainConfig = TrainConfig(epochs=4, lr=0.01, weight_decay=1e-4)
    layer_types: tuple[LayerKind, ...] = ("linear", "conv")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"field 'sparsity' must be in [0, 1), got {self.sparsity}")
        if any(not 0.0 <= s < 1.0 for s in self.layer_sparsity.values()):
            raise ValueError("field 'layer_sparsity': every value must be in [0, 1)")
        if self.quality < 0 or any(q < 0 for q in self.layer_quality.values()):
            raise ValueError("field 'quality'/'layer_quality' must be >= 0")
        if self.rounds < 1:
            raise ValueError(f"field 'rounds' must be >= 1, got {self.rounds}")
        if not 0.0 < self.ramp_fraction <= 1.0:
            raise ValueError(f"field 'ramp_fraction' must be in (0, 1], got {self.ramp_fraction}")
        if self.schedule == "iterative" and 0 < self.finetune.epochs < self.rounds:
            raise ValueError(f"field 'rounds' ({self.rounds}) must be <= finetune.epochs ({self.finetune.epochs}) "
                             "for the iterative schedule (each round retrains at least one epoch)")


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


def layer_targets(config: PruneMagnitudeConfig, layers: dict[str, nn.Module]) -> dict[str, float]:
    """Final sparsity per layer for the per-layer criteria (std, uniform)."""
    if config.criterion == "uniform":
        return {n: config.layer_sparsity.get(n, config.sparsity) for n in layers}
    targets = {}
    for name, layer in layers.items():
        w = layer.weight.detach()
        threshold = config.layer_quality.get(name, config.quality) * w.float().std().item()
        targets[name] = (w.abs() < threshold).float().mean().item()  # Han et al. 2015: |w| < q * std
    return targets


class MagnitudePruner:
    """The keep-masks of the selected layers, grown towards the config's targets."""

    def __init__(self, config: PruneMagnitudeConfig, layers: dict[str, nn.Module]) -> None:
        self.config, self.layers = config, layers
        self.targets = None if config.criterion == "global" else layer_targets(config, layers)
        self.masks: dict[str, torch.Tensor] = {}
        self.prune_to(0.0)  # weights already zero (an earlier pruning step) stay enforced

    def prune_to(self, fraction: float) -> None:
        """Prune ``fraction`` of each target (1.0: the final masks)."""
        weights = {n: m.weight for n, m in self.layers.items()}
        if self.targets is None:
            total = sum(w.numel() for w in weights.values())
            counts = global_counts(weights, round(fraction * self.config.sparsity * total))
        else:
            counts = {n: round(fraction * self.targets[n] * w.numel()) for n, w in weights.items()}
        for name, w in weights.items():
            self.masks[name] = magnitude_mask(w, counts[name]) & (w.detach() != 0)
        apply_masks(self.masks, self.layers)

    def kept(self) -> int:
        return sum(int(m.sum()) for m in self.masks.values())


def _train_agp(model: nn.Module, pruner: MagnitudePruner, ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """One fine-tuning run pruning at ``rounds`` evenly spaced optimizer steps of its first
    ``ramp_fraction`` (every stage counted: FitNets' hint stage comes first)."""
    config, ft = pruner.config, pruner.config.finetune
    events: dict[int, float] = {}
    calls = 0

    def agp_step(step: StepContext) -> None:
        nonlocal calls
        if not events:  # the data exist once training runs: place the pruning events
            epochs = ft.epochs + (ft.hint_epochs if ft.distill == "fitnets" else 0)
            ramp = max(1, round(config.ramp_fraction * epochs * steps_per_epoch(step.model, ctx.data.train, ft.batch_size, config.name)))
            events.update({max(1, round(j * ramp / config.rounds)): agp_fraction(j / config.rounds)
                           for j in range(1, config.rounds + 1)})
        calls += 1
        if calls in events:
            pruner.prune_to(events[calls])
        enforce(step)

    with enforced_masks(pruner.masks, pruner.layers) as enforce:
        details = finetune_(model, ft, ctx, after_step=[agp_step])
    before = pruner.kept()
    pruner.prune_to(1.0)  # a no-op when the ramp completed
    warnings = []
    if pruner.kept() != before:
        warnings.append(f"agp: the ramp did not complete in {calls} steps; {before - pruner.kept()} weights "
                        "were pruned after training, without retraining")
    return details, warnings


@register_technique("prune.magnitude", PruneMagnitudeConfig)
def prune_magnitude_(model: nn.Module, config: PruneMagnitudeConfig, ctx: Context) -> HandlerResult:
    """Unstructured magnitude pruning (Han 2015 std threshold, global, AGP) with masked fine-tuning."""
    layers = dict(select_layers(model, layer_classes(config.layer_types), config.include, config.exclude))
    if not layers:
        return HandlerResult(model, ["prune.magnitude: no layer matches layer_types/include/exclude; nothing pruned"])
    for field_name in ("layer_sparsity", "layer_quality"):
        for name in getattr(config, field_name):
            if name not in layers:
                raise unknown_name_error(field_name, name, layers)
    pruner = MagnitudePruner(config, layers)
    ft, warnings = config.finetune, []
    if config.schedule == "agp" and ft.epochs > 0:
        details, warnings = _train_agp(model, pruner, ctx)
        runs = [details]
    else:
        rounds = config.rounds if config.schedule == "iterative" else 1
        if config.schedule == "agp":
            warnings.append("agp schedule with finetune epochs 0 prunes once, without retraining")
        runs = []
        for r in range(1, rounds + 1):
            pruner.prune_to(agp_fraction(r / rounds) if rounds > 1 else 1.0)
            epochs = ft.epochs // rounds + (ft.epochs % rounds if r == rounds else 0)
            with enforced_masks(pruner.masks, layers) as enforce:
                runs.append(finetune_(model, dataclasses.replace(ft, epochs=epochs), ctx, after_step=[enforce]))
    apply_masks(pruner.masks, layers)
    per_layer = {n: {"weights": m.numel(), "kept": int(m.sum()), "density_pct": round(100 * m.float().mean().item(), 2)}
                 for n, m in pruner.masks.items()}
    total, kept = sum(v["weights"] for v in per_layer.values()), pruner.kept()
    return HandlerResult(model, warnings, {
        "layers": per_layer, "weights": total, "kept": kept,
        "density_pct": round(100 * kept / max(total, 1), 2),
        "pruning_rate": round(total / max(kept, 1), 2),
        "finetune": runs[-1] if len(runs) == 1 else runs,
        "val_accuracy": [a for run in runs for a in run.get("val_accuracy", [])],
    })
