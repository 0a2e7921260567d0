"""Structural channel pruning across coupled layers: ``prune_channels_`` and step ``prune.channels``.

1. build the dependency graph (:func:`torchslim.graph.build_dependency_graph`): groups of
   slices that must be removed together;
2. score every group's channels with an importance criterion (:mod:`.importance`);
3. choose what to remove: ``scope="uniform"`` removes ``ratio`` of every group's channels,
   ``scope="global"`` ranks all channels together after dividing each group's scores by the
   group mean (so groups of different scale compare); kept counts are rounded up to a
   multiple of ``round_to`` and no group loses more than ``max_group_ratio``;
4. with ``target_macs`` / ``target_params`` (reduction factors, e.g. 2.0), bisect the ratio
   on the graph's analytic MAC / parameter count until the target is met;
5. physically remove the channels (:mod:`.surgery`) and check the model still runs and
   returns the same output shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context, as_input_tuple
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerFilter
from torchslim.errors import UserError
from torchslim.graph.dependency import DependencyGraph, Group, build_dependency_graph
from torchslim.prune.importance import CRITERIA, group_importance
from torchslim.prune.surgery import remove_channels_

Importance = Literal["l1", "l2", "bn_scale", "taylor", "fisher", "fpgm", "random"]


@dataclass
class PruneResult:
    """What one pruning call did (``details`` of the recipe step)."""

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    ratio: float
    removed: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"macs_before": self.macs_before, "macs_after": self.macs_after,
                "macs_reduction": round(self.macs_before / max(self.macs_after, 1), 4),
                "params_before": self.params_before, "params_after": self.params_after,
                "ratio": round(self.ratio, 4), "removed_channels": self.removed}


def prunable_groups(graph: DependencyGraph, ignore: Sequence[str] = (), include_inexact: bool = True) -> list[Group]:
    """Groups with >= 2 channels whose producers are not in ``ignore`` (names or ``re:``)."""
    skip = LayerFilter(include=tuple(ignore)) if ignore else None
    out = []
    for g in graph.groups:
        if g.channels < 2 or (not g.exact and not include_inexact):
            continue
        if skip is not None and any(skip(name, None) for name in g.producers()):  # type: ignore[arg-type]
            continue
        out.append(g)
    return out


def _keep_count(n: int, ratio: float, round_to: int, max_group_ratio: float) -> int:
    keep = max(n - math.floor(n * min(ratio, max_group_ratio) + 1e-9), 1)
    keep = min(n, math.ceil(keep / round_to) * round_to)
    return max(keep, math.ceil(n * (1 - max_group_ratio) - 1e-9), 1)


def select_channels(
    groups: list[Group],
    scores: dict[int, np.ndarray],
    ratio: float,
    scope: str = "uniform",
    round_to: int = 1,
    max_group_ratio: float = 0.9,
    group_ratios: dict[str, float] | None = None,
) -> dict[int, np.ndarray]:
    """``{group id: channel indices to remove}`` (lowest scores first)."""
    removed: dict[int, np.ndarray] = {}
    if scope == "global":
        pooled = np.concatenate([scores[g.id] / max(scores[g.id].mean(), 1e-12) for g in groups]) if groups else []
        threshold = np.quantile(pooled, ratio) if len(pooled) and ratio > 0 else -np.inf
    for g in groups:
        order = np.argsort(scores[g.id], kind="stable")
        if group_ratios and g.name in group_ratios:
            n_remove = g.channels - _keep_count(g.channels, group_ratios[g.name], round_to, max_group_ratio)
        elif scope == "global":
            below = int(np.count_nonzero(scores[g.id] / max(scores[g.id].mean(), 1e-12) < threshold))
            n_remove = g.channels - _keep_count(g.channels, below / g.channels, round_to, max_group_ratio)
        else:
            n_remove = g.channels - _keep_count(g.channels, ratio, round_to, max_group_ratio)
        if n_remove > 0:
            removed[g.id] = np.sort(order[:n_remove])
    return removed


def _check_args(ratio: float, importance: str, scope: str, round_to: int, target_macs: float | None,
                target_params: float | None, max_group_ratio: float) -> None:
    if importance not in CRITERIA:
        raise UserError(f"importance must be one of {', '.join(CRITERIA)}, got {importance!r}")
    if scope not in ("uniform", "global"):
        raise UserError(f"scope must be 'uniform' or 'global', got {scope!r}")
    if not 0.0 <= ratio < 1.0:
        raise UserError(f"ratio must be in [0, 1), got {ratio}")
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise UserError(f"round_to must be a positive integer, got {round_to!r}")
    for name, value in (("target_macs", target_macs), ("target_params", target_params)):
        if value is not None and value <= 1.0:
            raise UserError(f"{name} is a reduction factor and must be > 1 (e.g. 2.0 for 2x fewer), got {value}")
    if not 0.0 < max_group_ratio < 1.0:
        raise UserError(f"max_group_ratio must be in (0, 1), got {max_group_ratio}")


def _output_shape(model: nn.Module, inputs: tuple[Any, ...]) -> torch.Size:
    """Shape of the model's first output from a forward on fake tensors (no arithmetic)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from torchslim.profiler.snapshot import first_tensor

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fake = tuple(mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in inputs)
    with mode, torch.no_grad():
        return first_tensor(model(*fake)).shape


def prune_channels_(
    model: nn.Module,
    example_inputs: Any,
    ratio: float = 0.5,
    importance: Importance = "l1",
    scope: Literal["uniform", "global"] = "uniform",
    ignore: Sequence[str] = (),
    round_to: int = 1,
    target_macs: float | None = None,
    target_params: float | None = None,
    **options: Any,
) -> nn.Module:
    """Remove channels (filters, neurons, heads) from ``model`` in place and return it.

    ``ratio``: fraction of each group's channels (uniform) or of all channels (global) to
    remove; ignored when ``target_macs`` / ``target_params`` (reduction factors) are given.
    ``ignore``: layer names / ``re:`` patterns whose output channels are kept.
    ``round_to``: kept channels per group are a multiple of it (SIMD-friendly widths).
    ``options``: see :func:`prune_channels_report_` (``data`` for taylor / fisher,
    ``group_ratios``, ``max_group_ratio``, ``seed``...).
    """
    prune_channels_report_(model, example_inputs, ratio, importance, scope, ignore, round_to, target_macs,
                           target_params, **options)
    return model


def prune_channels_report_(
    model: nn.Module,
    example_inputs: Any,
    ratio: float = 0.5,
    importance: Importance = "l1",
    scope: Literal["uniform", "global"] = "uniform",
    ignore: Sequence[str] = (),
    round_to: int = 1,
    target_macs: float | None = None,
    target_params: float | None = None,
    *,
    data: Any = None,
    max_group_ratio: float = 0.9,
    group_ratios: dict[str, float] | None = None,
    include_inexact: bool = True,
    seed: int = 0,
    num_batches: int = 4,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    graph: DependencyGraph | None = None,
    scores: dict[int, np.ndarray] | None = None,
) -> PruneResult:
    """:func:`prune_channels_`, returning what was done.

    ``data``: (x, y) Dataset or batches for ``taylor`` / ``fisher`` (``num_batches`` of 32).
    ``group_ratios``: per-group ratios by group name (e.g. from
    :func:`torchslim.prune.sensitivity.ratios_for_drop`), overriding ``ratio``.
    ``max_group_ratio``: no group loses more than this fraction. ``include_inexact``: also
    prune groups whose channels share normalisation statistics (LayerNorm dims).
    ``graph`` / ``scores``: reuse a dependency graph / importance scores already computed.
    """
    _check_args(ratio, importance, scope, round_to, target_macs, target_params, max_group_ratio)
    inputs = as_input_tuple(example_inputs)
    graph = graph or build_dependency_graph(model, inputs)
    groups = prunable_groups(graph, ignore, include_inexact)
    if scores is None:
        import torch.nn.functional as F

        scores = group_importance(model, groups, importance, data=data, seed=seed, num_batches=num_batches,
                                  loss_fn=loss_fn or F.cross_entropy)
    params_before = sum(p.numel() for p in model.parameters())
    macs_before = graph.macs()

    def plan(r: float) -> np.ndarray:
        return graph.remove_mask(select_channels(groups, scores, r, scope, round_to, max_group_ratio, group_ratios))

    if target_macs is not None or target_params is not None:
        def met(mask: np.ndarray) -> bool:
            ok = True
            if target_macs is not None:
                ok &= graph.macs(mask) * target_macs <= macs_before
            if target_params is not None:
                ok &= (params_before - graph.params_removed(mask)) * target_params <= params_before
            return ok

        lo, hi = 0.0, max_group_ratio
        if not met(plan(hi)):
            mask = plan(hi)
            raise UserError(
                f"target not reachable: at most {macs_before / max(graph.macs(mask), 1):.2f}x fewer MACs and "
                f"{params_before / max(params_before - graph.params_removed(mask), 1):.2f}x fewer params "
                f"(max_group_ratio={max_group_ratio}, {len(groups)} prunable groups)")
        for _ in range(30):
            mid = (lo + hi) / 2
            if met(plan(mid)):
                hi = mid
            else:
                lo = mid
        ratio = hi
    mask = plan(ratio)
    was_training = model.training
    model.eval()
    reference_shape = graph.output_shape() or _output_shape(model, inputs)
    removed_by_group = {g.name: int(np.count_nonzero(mask[g.components])) for g in groups}
    remove_channels_(model, graph, mask)
    try:
        shape = _output_shape(model, inputs)
    except Exception as exc:
        raise RuntimeError(f"pruned model no longer runs ({exc}); a module reads a pruned size "
                           "from a constant - add it to ignore") from exc
    model.train(was_training)
    if shape != reference_shape:
        raise RuntimeError(f"pruning changed the output shape {tuple(reference_shape)} -> {tuple(shape)}")
    result = PruneResult(macs_before, graph.macs(mask), params_before, sum(p.numel() for p in model.parameters()),
                         ratio, {k: v for k, v in removed_by_group.items() if v}, list(graph.warnings))
    inexact = [g.name for g in groups if not g.exact and removed_by_group.get(g.name)]
    if inexact:
        result.warnings.append(f"{len(inexact)} group(s) share normalisation statistics across channels "
                               f"(e.g. LayerNorm: {', '.join(inexact[:3])}); removal there is not exact, fine-tune")
    return result


@dataclass(frozen=True)
class PruneChannelsConfig(TechniqueConfig):
    """Remove channels across coupled layers; see :func:`prune_channels_`.

    ``finetune_epochs`` > 0 fine-tunes with :func:`torchslim.train.fit` on ``ctx.data``.
    """

    ratio: float = 0.5
    importance: Importance = "l1"
    scope: Literal["uniform", "global"] = "uniform"
    ignore: tuple[str, ...] = ()
    round_to: int = 1
    target_macs: float | None = None
    target_params: float | None = None
    max_group_ratio: float = 0.9
    group_ratios: dict[str, float] = field(default_factory=dict)
    num_batches: int = 4
    finetune_epochs: int = 0
    lr: float = 0.01
    batch_size: int = 64


def finetune_(model: nn.Module, ctx: Context, epochs: int, lr: float, batch_size: int) -> dict[str, Any]:
    if epochs <= 0:
        return {}
    if ctx.data is None:
        raise UserError("finetune_epochs > 0 needs data (the recipe's data section)")
    from torchslim.train import fit

    history = fit(model, ctx.data.train, epochs=epochs, lr=lr, batch_size=batch_size, seed=ctx.seed,
                  val_data=ctx.data.val, progress=ctx.progress)
    return {"finetune_epochs": epochs, "finetune_val_accuracy": history.val_accuracy}


@register_technique("prune.channels", PruneChannelsConfig)
def prune_channels_step_(model: nn.Module, config: PruneChannelsConfig, ctx: Context) -> HandlerResult:
    """Remove channels/filters/heads across coupled layers (dependency graph), optionally fine-tune."""
    data = ctx.data.train if ctx.data is not None else None
    result = prune_channels_report_(model, ctx.example_inputs, config.ratio, config.importance, config.scope, config.ignore,
                    config.round_to, config.target_macs, config.target_params, data=data,
                    max_group_ratio=config.max_group_ratio, group_ratios=dict(config.group_ratios) or None,
                    seed=ctx.seed, num_batches=config.num_batches)
    ctx.invalidate_graph()
    details = result.to_dict()
    details.update(finetune_(model, ctx, config.finetune_epochs, config.lr, config.batch_size))
    return HandlerResult(model, result.warnings, details)
