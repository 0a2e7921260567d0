"""Take a :class:`Snapshot` of a model state: profile, latency per runtime, accuracy (the
before/after measurements of every step)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.config import Checked
from torchslim.core.limits import check_threads
from torchslim.core.modules import evaluating
from torchslim.report.schema import LatencyPoint, Snapshot


@dataclass(frozen=True)
class MeasureConfig(Checked):
    """What to measure before/after each step.

    ``runtimes``: subset of ("eager", "onnxruntime"); empty to skip latency.
    ``batch_sizes``: latency batch sizes. ``threads``: fixed thread count (None: torch's current).
    """

    runtimes: tuple[str, ...] = ("eager", "onnxruntime")
    batch_sizes: tuple[int, ...] = (1,)
    threads: int | None = None

    def __post_init__(self) -> None:
        if any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"field 'batch_sizes' must hold integers >= 1, got {list(self.batch_sizes)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"field 'threads' must be >= 1, got {self.threads}")
        check_threads(self, "threads")
        if len(set(self.runtimes)) != len(self.runtimes):
            raise ValueError(f"field 'runtimes' lists a runtime twice: {list(self.runtimes)}")


def snapshot(
    model: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    label: str,
    measure: MeasureConfig,
    eval_fn: Callable[[nn.Module], float] | None = None,
) -> Snapshot:
    from torchslim.profiler import measure_latency, profile_model

    stats = profile_model(model, example_inputs)
    latency = []
    for runtime in measure.runtimes:
        for batch_size in measure.batch_sizes:
            lat = measure_latency(model, example_inputs, runtime=runtime, threads=measure.threads,
                                  batch_size=batch_size)
            latency.append(LatencyPoint(runtime, batch_size, lat.threads, lat.latency_ms_p50, lat.latency_ms_p90,
                                        lat.reliable, lat.unreliable_reason, lat.device, lat.provider, lat.warmup))
    return Snapshot(
        label=label,
        params=stats.params,
        macs=stats.macs,
        flops=stats.flops,
        size_bytes=stats.size_bytes,
        peak_activation_bytes=stats.peak_activation_bytes,
        other_flops=dict(stats.other_flops),
        uncounted_ops=dict(stats.uncounted_ops),
        latency=latency,
        accuracy=None if eval_fn is None else float(eval_fn(model)),
    )


def first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)) and output:
        return first_tensor(output[0])
    raise TypeError(f"model output of type {type(output).__name__} has no tensor")


@torch.no_grad()
def run_eval(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The first output tensor of ``model(*inputs)`` in eval mode (each module's flag restored)."""
    with evaluating(model):
        return first_tensor(model(*inputs)).detach().clone()
