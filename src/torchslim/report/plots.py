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
    runtime = report.initial.latency[0].runtime if report.initial.latency else None
    axes = {
        "size": ("size (KiB)", [s.size_bytes / 1024 for s in states]),
        "macs": ("MACs (millions)", [s.macs / 1e6 for s in states]),
    }
    if runtime:
        axes["latency"] = (f"{runtime} latency p50 (ms, batch 1)",
                           [s.latency_ms_p50(runtime, 1) or float("nan") for s in states])
    written = []
    for key, (xlabel, xs) in axes.items():
        fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
        ax.plot(xs, ys, "-o", color="tab:blue")
        for x, y, s in zip(xs, ys, states):
            ax.annotate(s.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
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
