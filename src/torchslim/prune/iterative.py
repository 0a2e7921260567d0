"""Iterative pruning: remove a fraction, fine-tune, repeat until the target is met.

Step ``prune.iterative`` reaches ``target_macs`` (a reduction factor) in ``steps`` equal
geometric stages: after stage k the model has ``target_macs ** (k / steps)`` fewer MACs than
at the start, and each stage is followed by the nested ``finetune`` training (default one
epoch at lr 0.01; Han et al. 2015 and Molchanov et al. 2017 both prune this way: small steps
let the network recover before the next cut). Every round reads the Context's capture: the
first round the graph that counted the starting MACs, later rounds a new capture of the
pruned model (the cache is keyed by the model's structure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.distill.finetune import finetune_
from torchslim.errors import UserError
from torchslim.prune.channels import plan_and_remove_
from torchslim.prune.config import PruneChannelsConfig, ScoredChoice, require, shared_fields
from torchslim.train.config import TrainConfig


@dataclass(frozen=True)
class IterativePruneConfig(ScoredChoice):
    """``steps`` prune + ``finetune`` rounds to ``target_macs`` x fewer MACs (a factor > 1)."""

    target_macs: float = 2.0
    steps: int = 3
    scope: Literal["uniform", "global"] = "uniform"
    finetune: TrainConfig = TrainConfig(epochs=1, lr=0.01)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, self.target_macs > 1.0, "target_macs", "a reduction factor > 1 (e.g. 2.0 for 2x fewer)")
        require(self, self.steps >= 1, "steps", ">= 1")
        require(self, self.scope in ("uniform", "global"), "scope", "'uniform' or 'global'")


@register_technique("prune.iterative", IterativePruneConfig)
def prune_iterative_(model: nn.Module, config: IterativePruneConfig, ctx: Context) -> HandlerResult:
    """Prune to target_macs in several prune / fine-tune rounds."""
    if ctx.data is None and config.finetune.epochs > 0:
        raise UserError("prune.iterative fine-tunes between rounds and needs data (the recipe's data section); "
                        "or set finetune: {epochs: 0}")
    rounds: list[dict[str, Any]] = []
    warnings: list[str] = []
    start_macs = current = ctx.dependency_graph(model).macs()
    for k in range(1, config.steps + 1):
        goal = start_macs / config.target_macs ** (k / config.steps)
        step = PruneChannelsConfig(**shared_fields(config, ScoredChoice), scope=config.scope,
                                   target_macs=max(current / goal, 1.0 + 1e-6))
        result = plan_and_remove_(model, step, ctx, seed=ctx.seed + k)
        current = result.macs_after
        entry = {"step": k, **result.to_dict()}
        trained = finetune_(model, config.finetune, ctx)
        if trained:
            entry["finetune"] = trained
        rounds.append(entry)
        warnings += [w for w in result.warnings if w not in warnings]
    details = {"macs_before": start_macs, "macs_after": current,
               "macs_reduction": round(start_macs / max(current, 1), 4), "rounds": rounds}
    return HandlerResult(model, warnings, details)
