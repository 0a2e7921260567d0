"""Did each step pay? Its factors against the state before it: size, MACs, latency per runtime and
batch size (> 1 is smaller or faster), accuracy change in points, and a verdict in words.

A latency factor within ``NOISE`` of 1 counts as unchanged (repeats on a shared machine differ
by several percent); a step that makes nothing smaller or faster, or makes a measured latency
slower, says so.
"""

from __future__ import annotations

from torchslim.report.schema import Snapshot, StepReport

NOISE = 0.1  # latency factors within 10% of 1 are "unchanged"


def _factor(before: float | None, after: float | None) -> float | None:
    return None if not before or not after else before / after


def step_factors(step: StepReport) -> dict[str, float | None]:
    """``size``, ``file`` (compressed file vs the dense state before), ``macs``, ``<runtime> bs<B>``."""
    b, a = step.before, step.after
    out = {"size": _factor(b.size_bytes, a.size_bytes), "macs": _factor(b.macs, a.macs)}
    if a.file_bytes:
        out["file"] = _factor(b.size_bytes, a.file_bytes)
    for point in b.latency:
        out[f"{point.runtime} bs{point.batch_size}"] = _factor(point.latency_ms_p50,
                                                              a.latency_ms_p50(point.runtime, point.batch_size))
    return out


def verdict(step: StepReport) -> str:
    """``pays (size, onnxruntime bs1)``, ``... but slower in eager bs16``, ``recovers accuracy (+68.2
    points)``, or ``no size or speed change by itself``. A step that leaves params, MACs and size as
    they were (fine-tuning, unstructured masks, weight sharing) cannot change latency: timing
    differences there are noise and are not read as gains or losses."""
    b, a = step.before, step.after
    factors = step_factors(step)
    gains = [k for k in ("size", "file", "macs") if (factors.get(k) or 1.0) > 1.005]
    structural = gains or (b.params, b.macs, b.size_bytes) != (a.params, a.macs, a.size_bytes)
    speed = {k: v for k, v in factors.items() if k not in ("size", "file", "macs") and v is not None}
    if structural:
        gains += [k for k, v in speed.items() if v > 1 + NOISE]
    losses = [k for k, v in speed.items() if v < 1 - NOISE] if structural else []
    if losses:
        return ("slower in " if not gains else f"pays ({', '.join(gains)}) but slower in ") + ", ".join(losses)
    if gains:
        return f"pays ({', '.join(gains)})"
    if b.accuracy is not None and a.accuracy is not None and a.accuracy > b.accuracy + 0.0005:
        return f"recovers accuracy ({100 * (a.accuracy - b.accuracy):+.1f} points)"
    return "no size or speed change by itself"


def paid_table(steps: list[StepReport], first: Snapshot) -> list[str]:
    """Markdown table, one row per step."""
    keys = ["size", "macs"] + [f"{p.runtime} bs{p.batch_size}" for p in first.latency]
    if any(s.after.file_bytes for s in steps):
        keys.insert(1, "file")
    lines = ["| # | technique | " + " | ".join(f"{k} x" for k in keys) + " | top-1 change | verdict |",
             "|" + "---|" * (len(keys) + 4)]
    for step in steps:
        factors = step_factors(step)
        cells = ["-" if factors.get(k) is None else f"{factors[k]:.2f}" for k in keys]
        acc = ("-" if step.before.accuracy is None or step.after.accuracy is None
               else f"{100 * (step.after.accuracy - step.before.accuracy):+.1f}")
        lines.append(f"| {step.index} | `{step.technique}` | " + " | ".join(cells) + f" | {acc} | {verdict(step)} |")
    return lines
