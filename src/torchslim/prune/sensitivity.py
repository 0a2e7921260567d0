"""Sensitivity analysis: accuracy after pruning one group at a time, at several ratios.

For every prunable group and ratio r, a copy of the model loses r of that group's channels
(lowest importance first, nothing else pruned) and is scored with ``eval_fn`` (Li et al.
2017, Sec. 4.1: layers whose accuracy collapses early are pruned less). ``ratios_for_drop``
turns the table into per-group ratios (the largest r whose drop stays within ``max_drop``),
which ``prune_channels_(..., group_ratios=...)`` and the step ``prune.channels`` accept.
Step ``prune.sensitivity`` writes the table (JSON + Markdown) and a plot to the run directory
and, with ``max_drop``, prunes with the derived ratios.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context, as_input_tuple
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.errors import UserError
from torchslim.graph.dependency import build_dependency_graph
from torchslim.prune.channels import Importance, prunable_groups, prune_channels_report_
from torchslim.prune.importance import group_importance


@dataclass(frozen=True)
class SensitivityRow:
    group: str
    channels: int
    ratio: float
    accuracy: float
    drop: float
    macs_reduction: float


def sensitivity(
    model: nn.Module,
    example_inputs: Any,
    eval_fn: Callable[[nn.Module], float],
    ratios: Sequence[float] = (0.25, 0.5, 0.75),
    importance: str = "l1",
    ignore: Sequence[str] = (),
    data: Any = None,
) -> list[SensitivityRow]:
    """One row per (group, ratio); ``drop`` = baseline accuracy - accuracy (points in [0, 1])."""
    inputs = as_input_tuple(example_inputs)
    graph = build_dependency_graph(model, inputs)
    groups = prunable_groups(graph, ignore)
    scores = group_importance(model, groups, importance, data=data)
    baseline = float(eval_fn(model))
    rows = []
    for g in groups:
        for r in ratios:
            work = copy.deepcopy(model)
            res = prune_channels_report_(work, inputs, 0.0, importance, "uniform", ignore, 1, None, None,
                                         group_ratios={g.name: r}, graph=graph, scores=scores)
            acc = float(eval_fn(work))
            rows.append(SensitivityRow(g.name, g.channels, r, acc, baseline - acc,
                                       res.macs_before / max(res.macs_after, 1)))
    return rows


def ratios_for_drop(rows: Sequence[SensitivityRow], max_drop: float) -> dict[str, float]:
    """Per group: the largest tested ratio whose accuracy drop is at most ``max_drop``."""
    best: dict[str, float] = {}
    for row in rows:
        best.setdefault(row.group, 0.0)
        if row.drop <= max_drop:
            best[row.group] = max(best[row.group], row.ratio)
    return best


def table_markdown(rows: Sequence[SensitivityRow]) -> str:
    ratios = sorted({r.ratio for r in rows})
    lines = ["| group | channels | " + " | ".join(f"drop @ {r:g}" for r in ratios) + " |",
             "|---|---:|" + "---:|" * len(ratios)]
    by_group: dict[str, dict[float, SensitivityRow]] = {}
    for row in rows:
        by_group.setdefault(row.group, {})[row.ratio] = row
    for name, cells in by_group.items():
        ch = next(iter(cells.values())).channels
        lines.append(f"| {name} | {ch} | " + " | ".join(f"{100 * cells[r].drop:+.1f}" for r in ratios) + " |")
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
class SensitivityConfig(TechniqueConfig):
    """Sensitivity table + plot; with ``max_drop`` (accuracy points in [0, 1]) also prune
    each group by the largest ratio whose drop stayed within it."""

    ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    importance: Importance = "l1"
    ignore: tuple[str, ...] = ()
    max_drop: float | None = None


@register_technique("prune.sensitivity", SensitivityConfig)
def sensitivity_(model: nn.Module, config: SensitivityConfig, ctx: Context) -> HandlerResult:
    """Per-group pruning sensitivity (table + PNG); optionally prune by it."""
    if ctx.eval_fn is None:
        raise UserError("prune.sensitivity needs an evaluation (the recipe's data section)")
    data = ctx.data.train if ctx.data is not None else None
    rows = sensitivity(model, ctx.example_inputs, ctx.eval_fn, config.ratios, config.importance, config.ignore, data)
    details: dict[str, Any] = {"table": [asdict(r) for r in rows]}
    if ctx.out_dir is not None:
        out = Path(ctx.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sensitivity.json").write_text(json.dumps(details["table"], indent=1), encoding="utf-8")
        (out / "sensitivity.md").write_text(table_markdown(rows) + "\n", encoding="utf-8")
        details["plot"] = str(plot_sensitivity(rows, out / "sensitivity.png"))
    if config.max_drop is not None:
        ratios = ratios_for_drop(rows, config.max_drop)
        result = prune_channels_report_(model, ctx.example_inputs, 0.0, config.importance, "uniform",
                                        config.ignore, 1, None, None, group_ratios=ratios, data=data)
        ctx.invalidate_graph()
        details.update(result.to_dict())
        details["group_ratios"] = ratios
    return HandlerResult(model, [], details)
