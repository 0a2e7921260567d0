"""PNG plots of a run: accuracy against size, MACs and latency, one point per model state.

matplotlib is imported on first use, with the non-interactive Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path

from torchslim.core.atomic import write_atomic
from torchslim.report.schema import RunReport


def write_plots(report: RunReport, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``accuracy_vs_size.png``, ``accuracy_vs_macs.png``, ``accuracy_vs_latency.png``.

    Without accuracy (no eval data) the y axis is the state index instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    states = [report.initial] + [s.after for s in report.steps]
    has_acc = all(s.accuracy is not None for s in states)
    ys = [100 * s.accuracy for s in states] if has_acc else list(range(len(states)))
    runtimes = sorted({p.runtime for p in report.initial.latency if p.batch_size == 1})
    axes: dict[str, tuple[str, dict[str, list[float]]]] = {
        "size": ("size (KiB)", {"": [s.size_bytes / 1024 for s in states]}),
        "macs": ("MACs (millions)", {"": [s.macs / 1e6 for s in states]}),
    }
    if runtimes:
        axes["latency"] = ("latency p50 (ms, batch 1)", {
            rt: [s.latency_ms_p50(rt, 1) or float("nan") for s in states] for rt in runtimes})
    written = []
    for key, (xlabel, series) in axes.items():
        fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
        for label, xs in series.items():
            ax.plot(xs, ys, "-o", label=label or None)
            for x, y, s in zip(xs, ys, states):
                ax.annotate(s.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if len(series) > 1:
            ax.legend(fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top-1 accuracy (%)" if has_acc else "state")
        ax.set_title(f"accuracy vs {key}" if has_acc else f"{key} per state")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(out_dir) / f"accuracy_vs_{key}.png"
        write_atomic(path, lambda p: fig.savefig(p, format="png"))
        plt.close(fig)
        written.append(path)
    return written
