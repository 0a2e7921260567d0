"""Inference latency of a model in eager PyTorch or ONNX Runtime, at a fixed thread count.

The runtimes do the work (``torch.inference_mode`` for eager, an
``onnxruntime.InferenceSession`` built by ``onnx_export.onnx_session`` for ORT, which
exports the model to a temporary ONNX file first). Hand-written: the timing loop.

Timing loop: ``warmup`` untimed calls, then up to ``repeats`` timed calls with
``time.perf_counter``, stopping early once the timed calls add up to ``max_seconds``
and at least ``min_repeats`` ran, so a slow model costs seconds, not minutes.
``LatencyStats.repeats`` records how many timed calls there were.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.core.context import as_input_tuple
from torchslim.core.modules import evaluating
from torchslim.profiler.analyze import Inputs, run_checked
from torchslim.profiler.onnx_export import export_onnx, onnx_session

RUNTIMES = ("eager", "onnxruntime")


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of one forward call, in milliseconds, over ``repeats`` calls."""

    runtime: str
    batch_size: int
    threads: int
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_mean: float
    repeats: int
    warmup: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


def batch_inputs(inputs: tuple[Any, ...], batch_size: int | None) -> tuple[tuple[Any, ...], int]:
    """Repeat each tensor input along dim 0 to ``batch_size`` rows (None: keep as is).

    Returns the inputs and their batch size (dim 0 of the first tensor).
    """
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if any(x.dim() == 0 for x in tensors):
        raise UserError("batch_size needs inputs with a batch dimension; got a 0-d tensor")
    if batch_size is None:
        return inputs, int(tensors[0].shape[0])
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    batched = tuple(
        x.repeat(math.ceil(batch_size / x.shape[0]), *[1] * (x.dim() - 1))[:batch_size]
        if isinstance(x, torch.Tensor)
        else x
        for x in inputs
    )
    return batched, batch_size


def _time_calls(
    call: Callable[[], Any], warmup: int, repeats: int, min_repeats: int, max_seconds: float
) -> list[float]:
    """Seconds per timed call (see the module docstring for the stopping rule)."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    while len(times) < repeats:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if len(times) >= min_repeats and sum(times) >= max_seconds:
            break
    return times


def _eager_timer(model: nn.Module, inputs: tuple[Any, ...], threads: int, timing: Any) -> list[float]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return timing(lambda: model(*inputs))
    finally:
        torch.set_num_threads(previous)


def _ort_timer(model: nn.Module, inputs: tuple[Any, ...], threads: int, timing: Any) -> list[float]:
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if len(tensors) != len(inputs):
        raise UserError("runtime 'onnxruntime' takes tensor inputs only")
    with tempfile.TemporaryDirectory(prefix="torchslim-latency-") as folder:
        path = export_onnx(model, inputs, Path(folder) / "model.onnx", dynamic_batch=True)
        session = onnx_session(path, threads)
    feeds = {
        spec.name: x.detach().cpu().contiguous().numpy()
        for spec, x in zip(session.get_inputs(), tensors)
    }
    return timing(lambda: session.run(None, feeds))


def measure_latency(
    model: nn.Module,
    example_inputs: Inputs,
    runtime: str = "eager",
    threads: int | None = None,
    batch_size: int | None = None,
    warmup: int = 3,
    repeats: int = 50,
    *,
    min_repeats: int = 5,
    max_seconds: float = 2.0,
) -> LatencyStats:
    """Latency in ms (p50, p90, mean) of ``model`` on ``example_inputs`` in ``runtime``.

    ``runtime``: "eager" (PyTorch, ``inference_mode``) or "onnxruntime" (exported with
    a dynamic batch, CPU provider). ``threads``: intra-op threads for either runtime
    (None: ``torch.get_num_threads()``); torch's setting is restored afterwards.
    ``batch_size`` repeats the example inputs along dim 0 (None: as given).
    """
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; known runtimes: {', '.join(RUNTIMES)}")
    if threads is None:
        threads = torch.get_num_threads()
    if threads < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    if repeats < 1 or min_repeats < 1 or warmup < 0:
        raise UserError(
            f"need repeats >= 1, min_repeats >= 1, warmup >= 0; "
            f"got {repeats}, {min_repeats}, {warmup}"
        )
    inputs, batch = batch_inputs(as_input_tuple(example_inputs), batch_size)

    def timing(call: Callable[[], Any]) -> list[float]:
        return _time_calls(call, warmup, repeats, min(min_repeats, repeats), max_seconds)

    timer = _eager_timer if runtime == "eager" else _ort_timer
    with evaluating(model):
        with torch.no_grad():
            run_checked(model, inputs)  # a bad shape fails here in one line, not mid-export
        times_ms = np.asarray(timer(model, inputs, threads, timing)) * 1e3
    p50, p90 = np.percentile(times_ms, [50, 90])
    return LatencyStats(
        runtime=runtime,
        batch_size=batch,
        threads=threads,
        latency_ms_p50=float(p50),
        latency_ms_p90=float(p90),
        latency_ms_mean=float(times_ms.mean()),
        repeats=len(times_ms),
        warmup=warmup,
    )
