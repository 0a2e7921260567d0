"""The one-line summary of a run ("1.4x faster in ONNX Runtime at batch 1, 15x smaller, -0.2 points")."""

from __future__ import annotations

from torchslim.report.schema import RunReport

RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "eager": "eager PyTorch"}


def _factor(x: float) -> str:
    return f"{x:.3g}x" if x < 10 else f"{x:.0f}x"


def _speed(report: RunReport) -> str | None:
    """Speed-ups original / final in ONNX Runtime (else eager) at every measured batch size."""
    for runtime in ("onnxruntime", "eager"):
        finals = {(p.runtime, p.batch_size): p for p in report.final.latency}
        pairs = [(p, finals.get((runtime, p.batch_size))) for p in report.initial.latency if p.runtime == runtime]
        pairs = [(p, q) for p, q in pairs if q is not None and p.latency_ms_p50 and q.latency_ms_p50]
        if not pairs:
            continue
        texts = [_factor(p.latency_ms_p50 / q.latency_ms_p50) + ("" if p.reliable and q.reliable else " (unreliable)")
                 for p, q in pairs]
        first = pairs[0][0].latency_ms_p50 / pairs[0][1].latency_ms_p50
        word = "faster" if first >= 1 else "as fast (slower)"
        text = f"{texts[0]} {word} in {RUNTIME_NAMES[runtime]} at batch {pairs[0][0].batch_size}"
        return text + "".join(f", {t} at batch {p.batch_size}" for t, (p, _) in zip(texts[1:], pairs[1:]))
    return None


def headline(report: RunReport) -> str:
    """Speed, size and accuracy of the final model against the original, in one line."""
    summary = report.summary()
    parts = [_speed(report)]
    if summary.get("size_reduction"):
        size = f"{_factor(summary['size_reduction'])} smaller"
        if summary.get("file_size_reduction"):
            size += f" ({_factor(summary['file_size_reduction'])} as the compressed file)"
        parts.append(size)
    if summary.get("accuracy_change_points") is not None:
        parts.append(f"{summary['accuracy_change_points']:+.1f} points top-1")
    return ", ".join(p for p in parts if p) or "no measurements"
