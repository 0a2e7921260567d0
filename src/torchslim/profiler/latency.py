"""Inference latency of a model in eager PyTorch or ONNX Runtime, at a fixed thread count,
on the device the model is on, with a flag saying whether the figure can be trusted.

The runtimes do the work (``torch.inference_mode`` for eager, an
``onnxruntime.InferenceSession`` built by ``onnx_export.onnx_session`` for ORT, which
exports the model to a temporary ONNX file first). Hand-written: the timing loop.

Timing: warm-up until consecutive timings settle, bounded (:func:`torchslim.core.warmup.warm_up`;
``warmup`` an int for a fixed count), then up to ``repeats`` timed calls, stopping early once
they add up to ``max_seconds`` and at least ``min_repeats`` ran, so a slow model costs
seconds, not minutes. On a CPU the clock is ``time.perf_counter``; eager on CUDA is timed
with CUDA events after synchronising. ONNX Runtime runs where the model is: with the CUDA
execution provider for a model on a GPU when onnxruntime has it
(``onnxruntime.get_available_providers()``), on the CPU provider otherwise; ``device`` and
``provider`` record where each figure came from.

``reliable`` / ``unreliable_reason``: :mod:`torchslim.core.reliability` (spread of the
repeats, unsettled warm-up, other processes busy during the measurement).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchslim.core.context import as_input_tuple
from torchslim.core.limits import cpu_cores
from torchslim.core.modules import evaluating
from torchslim.core.reliability import Contention, assess, contention, cpu_sample
from torchslim.core.warmup import Settle, TimeCall, Warmup, cuda_events, time_calls, wall_clock, warm_up
from torchslim.errors import UserError
from torchslim.profiler.analyze import Inputs, run_checked
from torchslim.profiler.onnx_export import export_onnx, onnx_session

RUNTIMES = ("eager", "onnxruntime")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"

@dataclass(frozen=True)
class LatencyStats:
    """Latency of one forward call, in milliseconds, over ``repeats`` timed calls after
    ``warmup`` warm-up calls (``warmup_settled``: the settle rule held; None for a fixed count).
    ``device``: where it ran ("cpu", "cuda:0"); ``provider``: the ONNX Runtime execution
    provider (None for eager). How busy the machine was meanwhile (None: not known):
    ``cpu_wait_fraction`` of the time some task waited for a CPU, ``other_cores`` other
    processes kept busy, the 1-minute ``load_average`` (:mod:`torchslim.core.reliability`)."""

    runtime: str
    batch_size: int
    threads: int
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_mean: float
    repeats: int
    warmup: int
    warmup_settled: bool | None = None
    device: str = "cpu"
    provider: str | None = None
    reliable: bool = True
    unreliable_reason: str | None = None
    cpu_wait_fraction: float | None = None
    other_cores: float | None = None
    load_average: float | None = None

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


def ort_providers(device: torch.device, available: Sequence[str]) -> list[Any]:
    """ONNX Runtime providers for a model on ``device``, given ``available`` (what
    ``onnxruntime.get_available_providers()`` lists): CUDA (then CPU) for a CUDA device
    when the CUDA provider is installed, else CPU only."""
    if device.type == "cuda" and CUDA_PROVIDER in available:
        return [(CUDA_PROVIDER, {"device_id": device.index or 0}), CPU_PROVIDER]
    return [CPU_PROVIDER]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


Timing = Callable[[TimeCall], tuple[Warmup, list[float], Contention]]


def _eager_timer(model: nn.Module, inputs: tuple[Any, ...], threads: int, device: torch.device,
                 timing: Timing) -> tuple[Warmup, list[float], Contention, str, str | None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            call = lambda: model(*inputs)  # noqa: E731
            time_call = cuda_events(call, device) if device.type == "cuda" else wall_clock(call)
            return (*timing(time_call), str(device), None)
    finally:
        torch.set_num_threads(previous)


def _ort_timer(model: nn.Module, inputs: tuple[Any, ...], threads: int, device: torch.device,
               timing: Timing) -> tuple[Warmup, list[float], Contention, str, str | None]:
    import onnxruntime as ort

    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if len(tensors) != len(inputs):
        raise UserError("runtime 'onnxruntime' takes tensor inputs only")
    with tempfile.TemporaryDirectory(prefix="torchslim-latency-") as folder:
        path = export_onnx(model, inputs, Path(folder) / "model.onnx", dynamic_batch=True)
        session = onnx_session(path, threads, providers=ort_providers(device, ort.get_available_providers()))
    provider = session.get_providers()[0]  # what ORT really uses (it falls back if CUDA fails to load)
    where = f"cuda:{device.index or 0}" if provider == CUDA_PROVIDER else "cpu"
    feeds = {
        spec.name: x.detach().cpu().contiguous().numpy()
        for spec, x in zip(session.get_inputs(), tensors)
    }
    # session.run copies the outputs back to the host, so a wall clock sees all the work.
    return (*timing(wall_clock(lambda: session.run(None, feeds))), where, provider)


def measure_latency(
    model: nn.Module,
    example_inputs: Inputs,
    runtime: str = "eager",
    threads: int | None = None,
    batch_size: int | None = None,
    warmup: int | Settle | None = None,
    repeats: int = 50,
    *,
    min_repeats: int = 5,
    max_seconds: float = 2.0,
) -> LatencyStats:
    """Latency in ms (p50, p90, mean) of ``model`` on ``example_inputs`` in ``runtime``.

    ``runtime``: "eager" (PyTorch, ``inference_mode``) or "onnxruntime" (exported with
    a dynamic batch). The model runs where its parameters are; inputs are moved there.
    ``threads``: intra-op threads for either runtime (None: ``torch.get_num_threads()``);
    torch's setting is restored afterwards. ``batch_size`` repeats the example inputs along
    dim 0 (None: as given). ``warmup``: None warms up until timings settle (default
    :class:`~torchslim.core.warmup.Settle`), a ``Settle`` with other bounds, or an int for
    a fixed number of warm-up calls.
    """
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; known runtimes: {', '.join(RUNTIMES)}")
    if threads is None:
        threads = torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cpu_cores():
        raise UserError(f"threads must be an int from 1 to this machine's {cpu_cores()} cores, got {threads!r}")
    if repeats < 1 or min_repeats < 1 or (isinstance(warmup, int) and warmup < 0):
        raise UserError(
            f"need repeats >= 1, min_repeats >= 1, warmup >= 0; "
            f"got {repeats}, {min_repeats}, {warmup}"
        )
    device = model_device(model)
    inputs, batch = batch_inputs(as_input_tuple(example_inputs), batch_size)
    inputs = tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)

    def timing(time_call: TimeCall) -> tuple[Warmup, list[float], Contention]:
        start = cpu_sample()  # contention over the warm-up and timed calls, not the export
        done = warm_up(time_call, warmup)
        times = time_calls(time_call, repeats, min(min_repeats, repeats), max_seconds)
        return done, times, contention(start, cpu_sample())

    timer = _eager_timer if runtime == "eager" else _ort_timer
    with evaluating(model):
        with torch.no_grad():
            run_checked(model, inputs)  # a bad shape fails here in one line, not mid-export
        done, times, busy, where, provider = timer(model, inputs, threads, device, timing)
    times_ms = np.asarray(times) * 1e3
    p50, p90 = (float(v) for v in np.percentile(times_ms, [50, 90]))
    verdict = assess(p50, p90, done.settled, busy, threads)
    return LatencyStats(
        runtime=runtime,
        batch_size=batch,
        threads=threads,
        latency_ms_p50=p50,
        latency_ms_p90=p90,
        latency_ms_mean=float(times_ms.mean()),
        repeats=len(times_ms),
        warmup=done.runs,
        warmup_settled=done.settled,
        device=where,
        provider=provider,
        reliable=verdict.reliable,
        unreliable_reason=verdict.reason,
        **{k: None if v is None else round(v, 3) for k, v in asdict(busy).items()},
    )
