"""Iterative pruning: remove a fraction, fine-tune, repeat until the target is met.

Step ``prune.iterative`` reaches ``target_macs`` (a reduction factor) in ``steps`` equal
geometric stages: after stage k the model has ``target_macs ** (k / steps)`` fewer MACs than
at the start, and each stage is followed by ``epochs_per_step`` of fine-tuning through
:func:`torchslim.train.fit` (Han et al. 2015 and Molchanov et al. 2017 both prune this way:
small steps let the network recover before the next cut).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.errors import UserError
from torchslim.prune.channels import Importance, finetune_, prune_channels_report_


@dataclass(frozen=True)
class IterativePruneConfig(TechniqueConfig):
    """``steps`` prune + fine-tune rounds to ``target_macs`` x fewer MACs."""

    target_macs: float = 2.0
    steps: int = 3
    importance: Importance = "l1"
    scope: Literal["uniform", "global"] = "uniform"
    ignore: tuple[str, ...] = ()
    round_to: int = 1
    epochs_per_step: int = 1
    lr: float = 0.01
    batch_size: int = 64


@register_technique("prune.iterative", IterativePruneConfig)
def prune_iterative_(model: nn.Module, config: IterativePruneConfig, ctx: Context) -> HandlerResult:
    """Prune to target_macs in several prune / fine-tune rounds."""
    if config.steps < 1 or config.target_macs <= 1.0:
        raise UserError(f"steps must be >= 1 and target_macs > 1, got {config.steps}, {config.target_macs}")
    if ctx.data is None and config.epochs_per_step > 0:
        raise UserError("prune.iterative fine-tunes between steps and needs data (the recipe's data section)")
    data = ctx.data.train if ctx.data is not None else None
    rounds: list[dict[str, Any]] = []
    warnings: list[str] = []
    start_macs = current = None
    for k in range(1, config.steps + 1):
        if start_macs is None:
            from torchslim.graph import build_dependency_graph

            start_macs = current = build_dependency_graph(model, ctx.example_inputs).macs()
        goal = start_macs / config.target_macs ** (k / config.steps)
        result = prune_channels_report_(model, ctx.example_inputs, 0.5, config.importance, config.scope,
                                        config.ignore, config.round_to, max(current / goal, 1.0 + 1e-6), None,
                                        data=data, seed=ctx.seed + k)
        current = result.macs_after
        entry = {"step": k, **result.to_dict()}
        entry.update(finetune_(model, ctx, config.epochs_per_step, config.lr, config.batch_size))
        rounds.append(entry)
        warnings += [w for w in result.warnings if w not in warnings]
    ctx.invalidate_graph()
    details = {"macs_before": start_macs, "macs_after": current,
               "macs_reduction": round(start_macs / max(current, 1), 4), "rounds": rounds}
    return HandlerResult(model, warnings, details)
