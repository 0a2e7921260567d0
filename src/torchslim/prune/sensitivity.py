"""Sensitivity analysis: accuracy after pruning one group at a time, at several ratios.

For every prunable group and ratio r, the model loses r of that group's channels (lowest
importance first, nothing else pruned) and is scored with ``ctx.eval_fn`` (Li et al. 2017,
Sec. 4.1: layers whose accuracy collapses early are pruned less). For an exact group the
channels are not cut out of a copy: their consumers' input columns are zeroed in place and
restored after scoring, which computes the same function as the pruned model (the identity
the pruning oracle tests on every zoo model) without copying the model once per row; an
inexact group is pruned on a deep copy. Step
``prune.sensitivity`` writes the table (JSON + Markdown) and a plot to the run directory and,
with ``max_accuracy_drop`` (in points of accuracy: 0.5 = half a point of top-1), prunes each
group by the largest tested ratio whose drop stayed within it (:func:`ratios_for_drop`; the
drops of several groups add up, so the combined drop can be larger). Everything is planned on
the one dependency graph of the Context's capture of the model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.progress import Progress
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.errors import UserError
from torchslim.prune.channels import plan_and_remove_
from torchslim.prune.config import PruneChannelsConfig, ScoredChoice, require, shared_fields
from torchslim.graph.groups import Group
from torchslim.prune.importance import group_importance, tensor_of
from torchslim.prune.plan import choose_groups, select_channels


@dataclass(frozen=True)
class SensitivityRow:
    """``accuracy``: as ``eval_fn`` returns it (fraction in [0, 1]); ``accuracy_drop``: baseline
    minus it, in points (100 x the fraction)."""

    group: str
    channels: int
    ratio: float
    accuracy: float
    accuracy_drop: float
    macs_reduction: float


@contextmanager
def consumers_ignoring(model: nn.Module, group: Group, channels: np.ndarray) -> Iterator[None]:
    """``model`` with its consumers' input columns (role ``in``) of ``channels`` zeroed; restored on exit.

    For an exact group this is the function of the model with those channels removed."""
    saved = []
    with torch.no_grad():
        for s in group.slices:
            if s.role == "in":
                t = tensor_of(model, s.param)
                index = torch.as_tensor(s.index[np.isin(s.channel, channels)], dtype=torch.long, device=t.device)
                saved.append((t, s.dim, index, t.index_select(s.dim, index)))
                t.index_fill_(s.dim, index, 0.0)
    try:
        yield
    finally:
        with torch.no_grad():
            for t, dim, index, values in saved:
                t.index_copy_(dim, index, values)


def sensitivity_rows(model: nn.Module, config: SensitivityConfig, ctx: Context) -> list[SensitivityRow]:
    """One row per (group, ratio); ``model`` is left as it was."""
    assert ctx.eval_fn is not None
    graph = ctx.dependency_graph(model)
    groups = choose_groups(model, graph, config)
    data = ctx.data.train if ctx.data is not None else None
    scores = group_importance(model, groups, config.importance, data=data, seed=ctx.seed,
                              num_batches=config.num_batches)
    baseline = float(ctx.eval_fn(model))
    macs = graph.macs()
    rows = []
    scan = Progress(len(groups) * len(config.ratios), "sensitivity scan", enabled=ctx.progress, unit="row")
    for g in groups:
        for r in config.ratios:
            if g.exact and any(s.role == "in" for s in g.slices):
                removed = select_channels([g], scores, 0.0, "uniform", config.round_to, config.max_group_ratio,
                                          {g.name: r})
                with consumers_ignoring(model, g, removed.get(g.id, np.zeros(0, dtype=np.int64))):
                    acc = float(ctx.eval_fn(model))
                macs_after = graph.macs(graph.remove_mask(removed))
            else:
                work = copy.deepcopy(model)
                one = PruneChannelsConfig(**shared_fields(config, ScoredChoice), ratio=0.0, group_ratios={g.name: r})
                macs_after = plan_and_remove_(work, one, ctx, graph=graph, scores=scores).macs_after
                acc = float(ctx.eval_fn(work))
            rows.append(SensitivityRow(g.name, g.channels, r, acc, 100.0 * (baseline - acc), macs / max(macs_after, 1)))
            scan.update()
    scan.close()
    return rows


def ratios_for_drop(rows: Sequence[SensitivityRow], max_accuracy_drop: float) -> dict[str, float]:
    """Per group: the largest tested ratio whose accuracy drop is at most ``max_accuracy_drop`` points."""
    best: dict[str, float] = {}
    for row in rows:
        best.setdefault(row.group, 0.0)
        if row.accuracy_drop <= max_accuracy_drop:
            best[row.group] = max(best[row.group], row.ratio)
    return best


def table_markdown(rows: Sequence[SensitivityRow]) -> str:
    ratios = sorted({r.ratio for r in rows})
    lines = ["| group | channels | " + " | ".join(f"drop @ {r:g} (points)" for r in ratios) + " |",
             "|---|---:|" + "---:|" * len(ratios)]
    by_group: dict[str, dict[float, SensitivityRow]] = {}
    for row in rows:
        by_group.setdefault(row.group, {})[row.ratio] = row
    for name, cells in by_group.items():
        ch = next(iter(cells.values())).channels
        lines.append(f"| {name} | {ch} | " + " | ".join(f"{cells[r].accuracy_drop:+.1f}" for r in ratios) + " |")
    return "\n".join(lines)


def plot_sensitivity(rows: Sequence[SensitivityRow], path: str | Path) -> Path:
    """Accuracy vs ratio, one line per group, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_group: dict[str, list[SensitivityRow]] = {}
    for row in rows:
        by_group.setdefault(row.group, []).append(row)
    for name, rs in by_group.items():
        rs = sorted(rs, key=lambda r: r.ratio)
        ax.plot([r.ratio for r in rs], [100 * r.accuracy for r in rs], marker="o", label=name)
    ax.set_xlabel("fraction of the group's channels removed")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Pruning sensitivity per group")
    if len(by_group) <= 16:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class SensitivityConfig(ScoredChoice):
    """Sensitivity table + plot at ``ratios``; with ``max_accuracy_drop`` (points, e.g. 1.0 = one
    point of top-1) also prune each group by the largest ratio whose drop stayed within it."""

    ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    max_accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, len(self.ratios) > 0 and all(0.0 < r < 1.0 for r in self.ratios), "ratios",
                "a non-empty list of fractions in (0, 1)")
        require(self, self.max_accuracy_drop is None or self.max_accuracy_drop >= 0, "max_accuracy_drop",
                ">= 0 (points of accuracy)")

    def needs_eval(self) -> str | None:
        return "scoring each ratio"


@register_technique("prune.sensitivity", SensitivityConfig)
def sensitivity_(model: nn.Module, config: SensitivityConfig, ctx: Context) -> HandlerResult:
    """Per-group pruning sensitivity (table + PNG); optionally prune by it."""
    if ctx.eval_fn is None:
        raise UserError("prune.sensitivity needs an evaluation (the recipe's data section)")
    rows = sensitivity_rows(model, config, ctx)
    details: dict[str, Any] = {"table": [asdict(r) for r in rows]}
    if ctx.out_dir is not None:
        out = Path(ctx.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sensitivity.json").write_text(json.dumps(details["table"], indent=1), encoding="utf-8")
        (out / "sensitivity.md").write_text(table_markdown(rows) + "\n", encoding="utf-8")
        details["plot"] = str(plot_sensitivity(rows, out / "sensitivity.png"))
    warnings: list[str] = []
    if config.max_accuracy_drop is not None:
        ratios = ratios_for_drop(rows, config.max_accuracy_drop)
        prune = PruneChannelsConfig(**shared_fields(config, ScoredChoice), ratio=0.0, group_ratios=ratios)
        result = plan_and_remove_(model, prune, ctx)
        details.update(result.to_dict())
        details["group_ratios"] = ratios
        warnings = result.warnings
    return HandlerResult(model, warnings, details)
