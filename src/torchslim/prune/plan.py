"""Which channels to remove: the groups a step may prune, per-group counts, and the bisection
of the ratio until a MACs / parameter target is met. Pure planning on the dependency graph;
:mod:`.channels` applies the plan.

- ``scope="uniform"`` removes ``ratio`` of every group's channels; ``scope="global"`` ranks
  all channels together after dividing each group's scores by the group mean (so groups of
  different scale compare);
- kept counts are rounded up to a multiple of ``round_to`` and no group loses more than
  ``max_group_ratio``;
- with ``target_macs`` / ``target_params`` the ratio is bisected on the graph's analytic
  MAC / parameter count (30 halvings) until the target is met.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from torchslim.core.select import LayerFilter, check_patterns, unknown_name_error
from torchslim.errors import UserError
from torchslim.graph.dependency import DependencyGraph, Group
from torchslim.prune.config import ChannelChoice, PruneChannelsConfig


def choose_groups(model: nn.Module, graph: DependencyGraph, config: ChannelChoice) -> list[Group]:
    """Groups with >= 2 channels, exact unless ``include_inexact``, no producer in ``ignore``."""
    check_patterns(model, config.ignore, "ignore")
    skip = LayerFilter(include=config.ignore) if config.ignore else None
    out = []
    for g in graph.groups:
        if g.channels < 2 or (not g.exact and not config.include_inexact):
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


def check_group_ratios(graph: DependencyGraph, groups: list[Group], group_ratios: dict[str, float]) -> list[str]:
    """An unknown group name is an error with close matches; a known group the step does not
    prune (ignored, inexact, one channel) is a warning."""
    known = {g.name for g in graph.groups}
    chosen = {g.name for g in groups}
    warnings = []
    for name in group_ratios:
        if name not in known:
            raise unknown_name_error("group_ratios", name, known, kind="group")
        if name not in chosen:
            warnings.append(f"group_ratios: group '{name}' is not pruned (ignored, inexact or a single channel)")
    return warnings


def plan_removal(graph: DependencyGraph, groups: list[Group], scores: dict[int, np.ndarray],
                 config: PruneChannelsConfig, params_before: int) -> tuple[np.ndarray, float]:
    """(component mask to remove, ratio used): ``config.ratio`` (default 0.5), or the smallest ratio that meets
    ``target_macs`` / ``target_params`` (UserError naming what is reachable if none does)."""

    def plan(r: float) -> np.ndarray:
        return graph.remove_mask(select_channels(groups, scores, r, config.scope, config.round_to,
                                                 config.max_group_ratio, config.group_ratios or None))

    if config.target_macs is None and config.target_params is None:
        return plan(config.ratio_or_default), config.ratio_or_default
    macs_before = graph.macs()

    def met(mask: np.ndarray) -> bool:
        ok = True
        if config.target_macs is not None:
            ok &= graph.macs(mask) * config.target_macs <= macs_before
        if config.target_params is not None:
            ok &= (params_before - graph.params_removed(mask)) * config.target_params <= params_before
        return ok

    lo, hi = 0.0, config.max_group_ratio
    mask = plan(hi)
    if not met(mask):
        raise UserError(
            f"target not reachable: at most {macs_before / max(graph.macs(mask), 1):.2f}x fewer MACs and "
            f"{params_before / max(params_before - graph.params_removed(mask), 1):.2f}x fewer params "
            f"(max_group_ratio={config.max_group_ratio}, {len(groups)} prunable groups)")
    for _ in range(30):
        mid = (lo + hi) / 2
        if met(plan(mid)):
            hi = mid
        else:
            lo = mid
    return plan(hi), hi


def plan_warnings(config: PruneChannelsConfig, ratio: float, macs: tuple[int, int], params: tuple[int, int],
                  removed: int) -> list[str]:
    """What the step did not do as written: a ratio overridden by a target or capped by
    ``max_group_ratio``, a ``round_to`` that removes nothing, a target overshot (the smallest
    ratio meeting it removes much more). ``macs`` / ``params``: (before, after)."""
    warnings = []
    targets = {k: v for k, v in (("target_macs", config.target_macs), ("target_params", config.target_params)) if v}
    if targets and config.ratio is not None:
        warnings.append(f"ratio {config.ratio} ignored: {' and '.join(targets)} set the ratio "
                        f"(the bisection chose {ratio:.4f})")
    if not targets and config.scope == "uniform" and ratio > config.max_group_ratio:
        warnings.append(f"ratio {ratio} capped by max_group_ratio {config.max_group_ratio}: no group loses "
                        f"more than {config.max_group_ratio:.0%} of its channels")
    capped = sorted(k for k, v in config.group_ratios.items() if v > config.max_group_ratio)
    if capped:
        warnings.append(f"group_ratios of {', '.join(capped[:3])} capped by max_group_ratio {config.max_group_ratio}")
    if removed == 0 and (targets or ratio > 0 or config.group_ratios):
        why = f"round_to {config.round_to} rounds every group back up to all its channels" if config.round_to > 1 \
            else "every group is too small, ignored or inexact"
        warnings.append(f"no channel removed: {why}")
    for name, (before, after) in (("target_macs", macs), ("target_params", params)):
        if name in targets and before / max(after, 1) > 1.1 * targets[name]:
            hint = f" (round_to {config.round_to} removes channels in steps of {config.round_to})" \
                if config.round_to > 1 else ""
            warnings.append(f"{name} {targets[name]} asked, {before / max(after, 1):.2f}x done: the smallest ratio "
                            f"that meets it overshoots{hint}")
    return warnings
