"""The one-line summary of a run ("1.4x faster in ONNX Runtime at batch 1, 15x smaller, -0.2 points")."""

from __future__ import annotations

from torchslim.report.schema import RunReport

RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "eager": "eager PyTorch"}


def _factor(x: float) -> str:
    return f"{x:.3g}x" if x < 10 else f"{x:.0f}x"


def _speed(report: RunReport) -> str | None:
    """Speed-ups original / final in ONNX Runtime (else eager) at every measured batch size."""
    for runtime in ("onnxruntime", "eager"):
        pairs = [(p.batch_size, p.latency_ms_p50, report.final.latency_ms_p50(runtime, p.batch_size))
                 for p in report.initial.latency if p.runtime == runtime]
        pairs = [(bs, before / after) for bs, before, after in pairs if before and after]
        if not pairs:
            continue
        (bs, first), rest = pairs[0], pairs[1:]
        word = "faster" if first >= 1 else "as fast (slower)"
        text = f"{_factor(first)} {word} in {RUNTIME_NAMES[runtime]} at batch {bs}"
        return text + "".join(f", {_factor(s)} at batch {b}" for b, s in rest)
    return None


def headline(report: RunReport) -> str:
    """Speed, size and accuracy of the final model against the original, in one line."""
    summary = report.summary()
    parts = [_speed(report)]
    if summary.get("size_reduction"):
        parts.append(f"{_factor(summary['size_reduction'])} smaller")
    if summary.get("file_size_reduction"):
        parts[-1] += f" ({_factor(summary['file_size_reduction'])} as the compressed file)"
    if summary.get("accuracy_change_points") is not None:
        parts.append(f"{summary['accuracy_change_points']:+.1f} points top-1")
    return ", ".join(p for p in parts if p) or "no measurements"
