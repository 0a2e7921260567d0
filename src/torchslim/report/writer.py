"""Write a run's outputs: report.json (canonical), report.md, report.html and the plots, atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from torchslim.core.atomic import write_text_atomic
from torchslim.report.html import render_html
from torchslim.report.markdown import render_markdown
from torchslim.report.plots import close, figures, svg_text, write_plots
from torchslim.report.schema import RunReport


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_report(report: RunReport, out_dir: str | os.PathLike, plots: bool = True) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        write_text_atomic(out / "report.json", json.dumps(_finite(report.to_dict()), indent=2, allow_nan=False)),
        write_text_atomic(out / "report.md", render_markdown(report)),
    ]
    svgs: dict[str, str] = {}
    if plots:
        figs = figures(report)
        try:
            paths += write_plots(report, out, figs)
            svgs = {name: svg_text(fig) for name, fig in figs.items()}
        finally:
            close(figs)
    paths.append(write_text_atomic(out / "report.html", render_html(report, svgs)))
    return paths
