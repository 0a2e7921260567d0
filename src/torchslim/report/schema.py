"""Report dataclasses. ``RunReport.to_dict()`` is the canonical JSON (``schema_version``).

Units are in the field names: ``macs`` (multiply-accumulates), ``flops`` (= 2 x macs),
``size_bytes`` (safetensors file of the state dict), ``latency_ms_p50``, ``accuracy`` (top-1,
fraction in [0, 1]), ``sqnr_db`` (signal-to-quantization-noise ratio of the step's output
against the pre-step output on a fixed batch; null when the outputs are identical).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 2  # 2: summary *_ratio keys renamed *_reduction (factors > 1, as targets are)


@dataclass
class LatencyPoint:
    """One latency figure. ``reliable`` false means it must not be shown plain
    (:meth:`format_ms`); ``unreliable_reason`` says why (spread of the repeats, a warm-up that
    did not settle, other processes busy). ``device`` ("cpu", "cuda:0") and ``provider`` (the
    ONNX Runtime execution provider; None for eager) say where it was measured;
    ``warmup_runs``: warm-up calls before the timed ones."""

    runtime: str
    batch_size: int
    threads: int
    latency_ms_p50: float
    latency_ms_p90: float
    reliable: bool = True
    unreliable_reason: str | None = None
    device: str = "cpu"
    provider: str | None = None
    warmup_runs: int | None = None

    def format_ms(self, digits: int = 3) -> str:
        """The p50 as text: "0.123", or "0.123 (unreliable)" when the figure is unreliable."""
        text = f"{self.latency_ms_p50:.{digits}f}"
        return text if self.reliable else f"{text} (unreliable)"


@dataclass
class Snapshot:
    """Measurements of one model state (the original, or the model after a step)."""

    label: str
    params: int
    macs: int
    flops: int
    size_bytes: int
    peak_activation_bytes: int
    other_flops: dict[str, int] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    latency: list[LatencyPoint] = field(default_factory=list)
    accuracy: float | None = None
    # Size of the compressed file written by the step that produced this state (e.g. Deep
    # Compression's .tsc file); None when only the dense safetensors size applies.
    file_bytes: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        fields = dict(data)
        fields["latency"] = [LatencyPoint(**p) for p in fields.get("latency", [])]
        return cls(**fields)

    def latency_point(self, runtime: str, batch_size: int = 1) -> LatencyPoint | None:
        for point in self.latency:
            if point.runtime == runtime and point.batch_size == batch_size:
                return point
        return None

    def latency_ms_p50(self, runtime: str, batch_size: int = 1) -> float | None:
        point = self.latency_point(runtime, batch_size)
        return None if point is None else point.latency_ms_p50


@dataclass
class StepReport:
    index: int
    technique: str
    config: dict[str, Any]
    before: Snapshot
    after: Snapshot
    max_abs_error: float
    sqnr_db: float | None
    seconds: float
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepReport:
        fields = dict(data)
        fields["before"] = Snapshot.from_dict(fields["before"])
        fields["after"] = Snapshot.from_dict(fields["after"])
        return cls(**fields)


@dataclass
class RunReport:
    model: dict[str, Any]
    machine: dict[str, Any]
    initial: Snapshot
    steps: list[StepReport] = field(default_factory=list)
    data: dict[str, Any] | None = None
    # What the model's inputs are: (x_raw * pixel_scale - mean[c]) / std[c], layout NCHW (None: unknown).
    preprocessing: dict[str, Any] | None = None
    torchslim_version: str = ""
    created_utc: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def final(self) -> Snapshot:
        return self.steps[-1].after if self.steps else self.initial

    def summary(self) -> dict[str, Any]:
        """Reductions original / final (factors > 1 mean smaller or faster, as targets are), speedups, and the accuracy change in points."""
        first, last = self.initial, self.final
        out: dict[str, Any] = {
            "params_reduction": _ratio(first.params, last.params),
            "macs_reduction": _ratio(first.macs, last.macs),
            "size_reduction": _ratio(first.size_bytes, last.size_bytes),
        }
        files = [s.file_bytes for s in [first, *(step.after for step in self.steps)] if s.file_bytes]
        if files:
            out["file_size_reduction"] = _ratio(first.size_bytes, files[-1])
        unreliable = []
        for point in first.latency:
            key = f"speedup_{point.runtime}_bs{point.batch_size}"
            after = last.latency_point(point.runtime, point.batch_size)
            out[key] = _ratio(point.latency_ms_p50, None if after is None else after.latency_ms_p50)
            if not point.reliable or (after is not None and not after.reliable):
                unreliable.append(key)
        if unreliable:  # a speedup from an unreliable figure is named, never shown plain
            out["unreliable_speedups"] = unreliable
        if first.accuracy is not None and last.accuracy is not None:
            out["accuracy_change_points"] = round(100 * (last.accuracy - first.accuracy), 3)
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["final"] = asdict(self.final)
        out["summary"] = self.summary()
        return out


def _ratio(before: float | None, after: float | None) -> float | None:
    if before is None or not after:
        return None
    return round(before / after, 4)
