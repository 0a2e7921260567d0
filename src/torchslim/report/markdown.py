"""Render a :class:`RunReport` as Markdown tables (a view of the canonical JSON)."""

from __future__ import annotations

from torchslim.report.details import details_markdown
from torchslim.report.paid import paid_table
from torchslim.report.schema import LatencyPoint, RunReport, Snapshot


def _count(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:g}"


def _bytes(n: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def _ms(point: LatencyPoint | None) -> str:
    return "-" if point is None else point.format_ms()  # "0.123 (unreliable)" when it is


def _acc(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _row(snap: Snapshot, points: list[tuple[str, int]], files: bool) -> str:
    cells = [snap.label, _count(snap.params), _count(snap.macs), _bytes(snap.size_bytes)]
    if files:
        cells.append("-" if snap.file_bytes is None else _bytes(snap.file_bytes))
    cells += [_ms(snap.latency_point(rt, bs)) for rt, bs in points]
    cells.append(_acc(snap.accuracy))
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: RunReport) -> str:
    points = [(p.runtime, p.batch_size) for p in report.initial.latency]
    files = any(s.after.file_bytes is not None for s in report.steps)
    head = ["state", "params", "MACs", "size"] + (["compressed file"] if files else [])
    head += [f"{rt} p50 ms (bs {bs})" for rt, bs in points] + ["top-1"]
    lines = [
        "# torchslim report",
        "",
        f"Model: `{(report.model.get('origin') or {}).get('name', report.model.get('class'))}`, "
        f"input {report.model.get('input_shapes')}; data: {(report.data or {}).get('name', '-')}; "
        f"created {report.created_utc} with torchslim {report.torchslim_version}.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in report.machine.items()) + ".",
        "",
        "## Before and after every step",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        _row(report.initial, points, files),
    ]
    lines += [_row(step.after, points, files) for step in report.steps]
    if report.steps:
        lines += ["", "## What each step paid (factors against the state before it; > 1 is smaller or faster)", ""]
        lines += paid_table(report.steps, report.initial)
    lines += ["", "## Steps", "", "| # | technique | seconds | max abs error | SQNR dB | warnings |", "|---|---|---|---|---|---|"]
    for step in report.steps:
        sqnr = "exact (no change)" if step.sqnr_db is None else f"{step.sqnr_db:.1f}"
        lines.append(f"| {step.index} | `{step.technique}` | {step.seconds:.3f} | {step.max_abs_error:.3g} | "
                     f"{sqnr} | {len(step.warnings)} |")
    for step in report.steps:
        lines += ["", f"### Step {step.index}: `{step.technique}`", ""]
        lines += details_markdown(step) or ["- (no details recorded)"]
        if isinstance(step.details.get("markdown"), str):
            lines += ["", step.details["markdown"].strip()]
    lines += ["", "## Summary (original / final; > 1 is smaller or faster)", ""]
    lines += [f"- {key}: {value}" for key, value in report.summary().items()]
    warned = [f"{s.index} (`{s.technique}`, {len(s.warnings)})" for s in report.steps if s.warnings]
    uncounted = report.final.uncounted_ops
    if warned or uncounted:
        lines += ["", "## Warnings", ""]
        if warned:
            lines.append("- steps with warnings (listed under each step above): " + ", ".join(warned))
        if uncounted:
            lines.append("- ops without a FLOP formula (not counted): "
                         + ", ".join(f"`{k}` x{v}" for k, v in sorted(uncounted.items())))
    return "\n".join(lines) + "\n"
