"""Plots of a run: accuracy against size, MACs and latency, each answering one question.

- Every model state is a numbered point (0 = original, i = after step i), not joined in step
  order; the legend beside the plot names each number. States whose step did not train and
  that a later step recovers from (e.g. pruning before its fine-tuning) are hollow and marked
  "not fine-tuned".
- The accuracy axis is fitted to the original, the final state and the states near them; a
  state far below (an un-fine-tuned intermediate) sits on the bottom edge as a down-triangle
  with its real accuracy in the legend.
- Deployable artefacts are points of their own on the size plot: a compressed file a step
  wrote (the state's ``file_bytes``, e.g. Deep Compression's .tsc) and an int8 ONNX file (the
  step's ``onnx_size_bytes``), at the accuracy of the state they hold.
- Latency: one panel per runtime and batch size. Log scales where values span > 8x.

matplotlib is imported on first use, with the non-interactive Agg backend. :func:`figures`
builds the figures once; PNG files and the SVG embedded in report.html are both drawn from them.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchslim.core.atomic import write_atomic
from torchslim.report.schema import RunReport, Snapshot, StepReport

LOG_SPAN = 8.0  # a log axis when max / min exceeds this
NEAR_POINTS = 5.0  # accuracy within this many points of the original or final state stays on the axis


@dataclass(frozen=True)
class Point:
    number: str
    label: str
    state: Snapshot
    artefact: bool = False  # a deployable file rather than a model state
    size_bytes: int | None = None
    untrained: bool = False


def _trained(step: StepReport) -> bool:
    if step.technique == "finetune" or step.details.get("train_loss"):
        return True
    nested = step.details.get("finetune")
    return isinstance(nested, dict) and bool(nested.get("train_loss"))


def points(report: RunReport) -> list[Point]:
    """Numbered model states (0 = original, i = after step i) and the deployable artefacts."""
    out = [Point("0", "original", report.initial)]
    best_later = [max((s.after.accuracy or 0.0) for s in report.steps[i + 1:]) if i + 1 < len(report.steps) else None
                  for i in range(len(report.steps))]
    for i, step in enumerate(report.steps):
        acc = step.after.accuracy
        recovered = best_later[i] is not None and acc is not None and best_later[i] > acc + 0.01
        untrained = recovered and not _trained(step) and step.max_abs_error > 0
        label = f"after {step.technique}" + (" (not fine-tuned)" if untrained else "")
        out.append(Point(str(step.index), label, step.after, untrained=untrained))
    for step in report.steps:
        files = (("f", step.after.file_bytes, step.details.get("path"), "compressed file"),
                 ("q", step.details.get("onnx_size_bytes"), step.details.get("onnx_path"), "int8 ONNX file"))
        for suffix, size, path, what in files:
            if isinstance(size, int) and size > 0:
                out.append(Point(f"{step.index}{suffix}", f"{Path(str(path or what)).name} (step {step.index})",
                                 step.after, artefact=True, size_bytes=size))
    return out


def _acc(point: Point) -> float | None:
    return None if point.state.accuracy is None else 100 * point.state.accuracy


def accuracy_limits(report: RunReport) -> tuple[float, float] | None:
    """y range covering the original, the final state and every state within NEAR_POINTS of them."""
    if report.initial.accuracy is None or report.final.accuracy is None:
        return None
    anchors = [100 * report.initial.accuracy, 100 * report.final.accuracy]
    states = [100 * s.accuracy for s in [report.initial, *(st.after for st in report.steps)] if s.accuracy is not None]
    kept = [a for a in states if a >= min(anchors) - NEAR_POINTS]
    low, high = min(kept), max(kept)
    pad = max(0.15 * (high - low), 0.3)
    return max(low - pad, 0.0), min(high + pad, 100.0)


def _log_if_wide(ax: Any, values: list[float]) -> None:
    """A log x axis when the values span more than LOG_SPAN, ticks as plain numbers (30, 100, 300)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > LOG_SPAN:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def _draw(ax: Any, pts: list[tuple[Point, float]], limits: tuple[float, float] | None) -> list[Any]:
    """Scatter numbered points (x scale chosen here); returns legend handles (one per point)."""
    handles = []
    colors = {"state": "#1f77b4", "final": "#d62728", "artefact": "#2ca02c"}
    labels: list[tuple[str, float, float, str]] = []
    last_state = max((int(p.number) for p, _ in pts if not p.artefact), default=0)
    for point, x in pts:
        acc = _acc(point)
        y = acc if acc is not None else float(point.number.rstrip("fq"))
        off_axis = limits is not None and acc is not None and acc < limits[0]
        if off_axis:
            y = limits[0]
        kind = "artefact" if point.artefact else ("final" if int(point.number) == last_state else "state")
        marker = "v" if off_axis else ("*" if point.artefact else "o")
        face = "white" if point.untrained else colors[kind]
        size = 14 if point.artefact else 9
        (h,) = ax.plot([x], [y], marker=marker, markersize=size, markerfacecolor=face,
                       markeredgecolor=colors[kind], linestyle="none", clip_on=False, zorder=3)
        labels.append((point.number, x, y, colors[kind]))
        acc_text = "" if acc is None else f", {acc:.1f}%" + (" (off axis)" if off_axis else "")
        h.set_label(f"{point.number}: {point.label}{acc_text}")
        handles.append(h)
    original = next(((p, x) for p, x in pts if p.number == "0"), None)
    if original is not None:  # dotted cross through the original: left of it is smaller / faster
        ax.axvline(original[1], color="#999999", linestyle=":", linewidth=1, zorder=1)
        if _acc(original[0]) is not None:
            ax.axhline(_acc(original[0]), color="#999999", linestyle=":", linewidth=1, zorder=1)
    if limits is not None:
        ax.set_ylim(*limits)
    _log_if_wide(ax, [x for _, x in pts])
    ax.grid(alpha=0.3, which="both")
    # Points closer than a label's size on screen get one label "2,3,4" instead of numbers printed
    # over each other (the axes' limits and scales are final here, so display positions are too).
    ax.autoscale_view()
    for group in _clusters(ax, labels):
        _, x, y, color = group[0]
        ax.annotate(",".join(n for n, *_ in group), (x, y), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=8, color=color, zorder=4)
    return handles


def _clusters(ax: Any, labels: list[tuple[str, float, float, str]], dx_px: float = 22.0,
              dy_px: float = 16.0) -> list[list[tuple[str, float, float, str]]]:
    """Greedy grouping of labels whose points lie within (dx_px, dy_px) of a group's first point."""
    groups: list[tuple[tuple[float, float], list[tuple[str, float, float, str]]]] = []
    for label in labels:
        px, py = ax.transData.transform((label[1], label[2]))
        for (gx, gy), members in groups:
            if abs(px - gx) < dx_px and abs(py - gy) < dy_px:
                members.append(label)
                break
        else:
            groups.append(((px, py), [label]))
    return [members for _, members in groups]


def figures(report: RunReport) -> dict[str, Any]:
    """``{"accuracy_vs_size": fig, "accuracy_vs_macs": fig, "accuracy_vs_latency": fig}`` (latency
    only when measured). Without accuracy the y axis is the state number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = points(report)
    states = [p for p in pts if not p.artefact]
    limits = accuracy_limits(report)
    ylabel = "top-1 accuracy (%)" if limits is not None else "state"
    out: dict[str, Any] = {}

    def single(key: str, title: str, xlabel: str, xy: list[tuple[Point, float]]) -> None:
        fig, ax = plt.subplots(figsize=(8.6, 4.2), dpi=100)
        handles = _draw(ax, xy, limits)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=11)
        fig.tight_layout(rect=(0, 0, 0.56, 1))
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.57, 0.5), fontsize=8, frameon=False)
        out[key] = fig

    size_xy = [(p, (p.size_bytes if p.artefact else p.state.size_bytes) / 1024) for p in pts]
    single("accuracy_vs_size", "Accuracy vs size on disk (stars: deployable files)", "size (KiB)", size_xy)
    single("accuracy_vs_macs", "Accuracy vs compute", "MACs (millions)", [(p, p.state.macs / 1e6) for p in states])
    panels = [(pt.runtime, pt.batch_size) for pt in report.initial.latency]
    if panels:
        cols = min(len(panels), 2)
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols + 4.4, 3.3 * rows), dpi=100, squeeze=False)
        handles: list[Any] = []
        for ax, (runtime, batch) in zip(axes.flat, panels):
            xy = [(p, p.state.latency_ms_p50(runtime, batch)) for p in states]
            xy = [(p, x) for p, x in xy if x]
            handles = _draw(ax, xy, limits) or handles
            ax.set_title(f"{runtime}, batch {batch}", fontsize=10)
            ax.set_xlabel("latency p50 (ms)")
            ax.set_ylabel(ylabel)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.suptitle("Accuracy vs latency (left is faster)", fontsize=11)
        plots_end = 1 - 4.4 / (4.3 * cols + 4.4)
        fig.tight_layout(rect=(0, 0, plots_end, 1))
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(plots_end + 0.01, 0.5), fontsize=8,
                   frameon=False)
        out["accuracy_vs_latency"] = fig
    return out


def svg_text(fig: Any) -> str:
    """The figure as an inline SVG element (no XML prolog), for report.html."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def close(figs: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)


def write_plots(report: RunReport, out_dir: str | os.PathLike, figs: dict[str, Any] | None = None) -> list[Path]:
    """Write one PNG per figure (``accuracy_vs_size.png``, ``..._macs.png``, ``..._latency.png``)."""
    owned = figs is None
    figs = figures(report) if figs is None else figs
    written = []
    try:
        for key, fig in figs.items():
            path = Path(out_dir) / f"{key}.png"
            write_atomic(path, lambda p, fig=fig: fig.savefig(p, format="png"))
            written.append(path)
    finally:
        if owned:
            close(figs)
    return written
