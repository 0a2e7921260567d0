"""Structural channel pruning across coupled layers: step ``prune.channels`` / ``prune_channels_``.

>>> prune_channels_(model, PruneChannelsConfig(target_macs=2.0, round_to=8), ctx)
>>> prune_channels_(model, {"ratio": 0.3, "finetune": {"epochs": 2, "distill": "kd"}}, ctx)

1. the dependency graph of the Context's one capture (``ctx.dependency_graph(model)``):
   groups of slices that must be removed together;
2. score every chosen group's channels with an importance criterion (:mod:`.importance`);
3. choose what to remove (:mod:`.plan`: ratio, or bisection to ``target_macs`` /
   ``target_params``);
4. physically remove the channels (:mod:`.surgery`), check the model still runs (a forward
   on fake tensors) and returns the same output shape;
5. fine-tune per the nested ``finetune`` section (:func:`torchslim.distill.finetune.finetune_`).

:func:`plan_and_remove_` (steps 1-4) is what ``prune.iterative``, ``prune.group_lasso`` and
``prune.sensitivity`` call with a :class:`PruneChannelsConfig` of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.modules import evaluating
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.distill.finetune import finetune_
from torchslim.errors import UserError
from torchslim.graph.dependency import DependencyGraph
from torchslim.prune.config import PruneChannelsConfig
from torchslim.prune.importance import group_importance
from torchslim.prune.plan import check_group_ratios, choose_groups, plan_removal, plan_warnings
from torchslim.prune.surgery import remove_channels_


@dataclass
class PruneResult:
    """What one pruning call did (``details`` of the recipe step)."""

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    ratio: float
    removed: dict[str, int] = field(default_factory=dict)
    inexact_kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        details = {"macs_before": self.macs_before, "macs_after": self.macs_after,
                   "macs_reduction": round(self.macs_before / max(self.macs_after, 1), 4),
                   "params_before": self.params_before, "params_after": self.params_after,
                   "params_reduction": round(self.params_before / max(self.params_after, 1), 4),
                   "ratio": round(self.ratio, 4), "removed_channels": self.removed}
        # "ratio": the one applied (bisected for a target, after max_group_ratio's cap)
        if self.inexact_kept:
            details["inexact_groups_kept"] = self.inexact_kept
        return details


def _output_shape(model: nn.Module, inputs: tuple[Any, ...]) -> torch.Size:
    """Shape of the model's first output from a forward on fake tensors (no arithmetic)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from torchslim.profiler.snapshot import first_tensor

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fake = tuple(mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in inputs)
    with mode, torch.no_grad():
        return first_tensor(model(*fake)).shape


@contextmanager
def _running_module(model: nn.Module) -> Iterator[list[str]]:
    """A stack of the qualified names of the modules whose forward is running."""
    stack: list[str] = []

    def enter(name: str) -> Callable[..., None]:
        return lambda module, args: stack.append(name)  # returns None: inputs unchanged

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        stack.pop()

    hooks = []
    for name, module in model.named_modules():
        hooks += [module.register_forward_pre_hook(enter(name)), module.register_forward_hook(leave)]
    try:
        yield stack
    finally:
        for hook in hooks:
            hook.remove()


def _check_still_runs(model: nn.Module, inputs: tuple[Any, ...], reference: torch.Size | None) -> None:
    with _running_module(model) as stack:
        try:
            shape = _output_shape(model, inputs)
        except (RuntimeError, ValueError, IndexError, AssertionError) as exc:  # shape errors of a forward
            where = f"'{stack[-1]}'" if stack and stack[-1] else type(model).__name__
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"the pruned model no longer runs in {where} ({first}): it reads a pruned size "
                            "from a constant; add that layer's producers to 'ignore'") from exc
    if reference is not None and shape != reference:
        raise RuntimeError(f"pruning changed the output shape {tuple(reference)} -> {tuple(shape)}")


def plan_and_remove_(model: nn.Module, config: PruneChannelsConfig, ctx: Context, *,
                     graph: DependencyGraph | None = None, scores: dict[int, np.ndarray] | None = None,
                     seed: int | None = None) -> PruneResult:
    """Steps 1-4 of the module docstring on ``model`` in place; no fine-tuning.

    ``graph``: a dependency graph of a model with the same structure (e.g. the original of a
    deep copy; default ``ctx.dependency_graph(model)``). ``scores``: importance per group id of
    that graph, instead of ``config.importance``. ``seed``: for ``random`` (default ``ctx.seed``).
    """
    graph = graph if graph is not None else ctx.dependency_graph(model)
    groups = choose_groups(model, graph, config)
    warnings = list(graph.warnings) + check_group_ratios(graph, groups, config.group_ratios)
    if scores is None:
        data = ctx.data.train if ctx.data is not None else None
        scores = group_importance(model, groups, config.importance, data=data,
                                  seed=ctx.seed if seed is None else seed, num_batches=config.num_batches)
    params_before = sum(p.numel() for p in model.parameters())
    mask, ratio = plan_removal(graph, groups, scores, config, params_before)
    removed = {g.name: int(np.count_nonzero(mask[g.components])) for g in groups}
    with evaluating(model):  # the check forward must not update BN statistics
        reference = graph.output_shape() or _output_shape(model, ctx.example_inputs)
        remove_channels_(model, graph, mask)
        _check_still_runs(model, ctx.example_inputs, reference)
    inexact_kept = [] if config.include_inexact else [g.name for g in graph.groups if not g.exact and g.channels > 1]
    result = PruneResult(graph.macs(), graph.macs(mask), params_before, sum(p.numel() for p in model.parameters()),
                         min(ratio, config.max_group_ratio), {k: v for k, v in removed.items() if v}, inexact_kept,
                         warnings)
    result.warnings += plan_warnings(config, ratio, (result.macs_before, result.macs_after),
                                     (result.params_before, result.params_after), sum(removed.values()))
    inexact = [g.name for g in groups if not g.exact and removed.get(g.name)]
    if inexact:
        result.warnings.append(f"{len(inexact)} group(s) share normalisation statistics across channels "
                               f"(e.g. LayerNorm: {', '.join(inexact[:3])}); removal there is not exact, fine-tune")
    return result


@register_technique("prune.channels", PruneChannelsConfig)
def prune_channels_(model: nn.Module, config: PruneChannelsConfig, ctx: Context) -> HandlerResult:
    """Remove channels/filters/heads across coupled layers (dependency graph), optionally fine-tune."""
    result = plan_and_remove_(model, config, ctx)
    details = result.to_dict()
    trained = finetune_(model, config.finetune, ctx)
    if trained:
        details["finetune"] = trained
    return HandlerResult(model, result.warnings, details)
