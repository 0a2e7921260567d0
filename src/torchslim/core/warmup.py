"""Warm-up until consecutive timings settle (with a bound), then the timed calls.

Every latency figure in torchslim (:func:`torchslim.profiler.measure_latency`,
:func:`torchslim.core.timing.compare_interleaved`) and every benchmark in ``benchmarks/``
warms up through :func:`warm_up`. A fixed count is not enough: a new ONNX Runtime session
of a ResNet-50-size model is several times slower on its first runs (memory arenas, kernel
selection, thread-pool spin-up), and how many runs that takes depends on the model and machine.

Settle rule: time each warm-up call; once at least ``min_runs`` calls and two windows ran,
the warm-up has settled when the median of the last ``window`` calls is within
``tolerance`` (relative) of the median of the ``window`` calls before them. It stops
unsettled after ``max_runs`` calls or ``max_seconds`` of warm-up, and says so
(:class:`Warmup` ``settled=False``), which marks the figure unreliable
(:mod:`torchslim.core.reliability`).

Hand-written: pyperf and ``timeit`` calibrate a loop count for a callable but do not decide
when a stateful runtime has warmed up; ``torch.utils.benchmark`` warms up a fixed amount.
Everything takes a ``time_call`` (one call, returns its seconds) so that wall clocks, CUDA
events and test sequences plug in alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

TimeCall = Callable[[], float]  # runs the measured thing once, returns its duration in seconds


@dataclass(frozen=True)
class Settle:
    """The settle rule's parameters (module docstring)."""

    window: int = 3
    tolerance: float = 0.1
    min_runs: int = 3
    max_runs: int = 60
    max_seconds: float = 10.0  # a 1 s-per-call model (VGG-16, batch 16, on 2 cores) still gets two windows

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_runs < 0 or self.max_runs < max(self.min_runs, 2 * self.window):
            raise ValueError(f"need window >= 1, min_runs >= 0, max_runs >= max(min_runs, 2 * window); got {self}")
        if not self.tolerance > 0 or not self.max_seconds > 0:
            raise ValueError(f"need tolerance > 0 and max_seconds > 0; got {self}")


@dataclass(frozen=True)
class Warmup:
    """What a warm-up did: ``runs`` calls in ``seconds``; ``settled`` None for a fixed count."""

    runs: int
    settled: bool | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"warmup_runs": self.runs, "warmup_settled": self.settled}


def has_settled(times: Sequence[float], window: int, tolerance: float) -> bool:
    """Median of the last ``window`` times within ``tolerance`` of the median of the window before."""
    if len(times) < 2 * window:
        return False
    last = statistics.median(times[-window:])
    previous = statistics.median(times[-2 * window:-window])
    return abs(last - previous) <= tolerance * previous


def warm_up(time_call: TimeCall, policy: Settle | int | None = None) -> Warmup:
    """Call ``time_call`` until the settle rule holds (``policy``: a :class:`Settle`, None for
    the default one, or an int for a fixed number of unchecked calls)."""
    if isinstance(policy, int):
        if policy < 0:
            raise ValueError(f"warm-up runs must be >= 0, got {policy}")
        seconds = sum(time_call() for _ in range(policy))
        return Warmup(policy, None, seconds)
    policy = policy or Settle()
    times: list[float] = []
    while len(times) < policy.max_runs and sum(times) < policy.max_seconds:
        times.append(time_call())
        if len(times) >= policy.min_runs and has_settled(times, policy.window, policy.tolerance):
            return Warmup(len(times), True, sum(times))
    return Warmup(len(times), False, sum(times))


def time_calls(time_call: TimeCall, repeats: int, min_repeats: int = 1, max_seconds: float = float("inf")) -> list[float]:
    """Seconds of up to ``repeats`` timed calls, stopping once they add up to ``max_seconds``
    and at least ``min_repeats`` ran (a slow model costs seconds, not minutes)."""
    times: list[float] = []
    while len(times) < repeats:
        times.append(time_call())
        if len(times) >= min_repeats and sum(times) >= max_seconds:
            break
    return times


def wall_clock(fn: Callable[[], Any], calls: int = 1, clock: Callable[[], float] = time.perf_counter) -> TimeCall:
    """A :data:`TimeCall` timing ``calls`` calls of ``fn`` with ``clock``; returns seconds per call."""

    def time_call() -> float:
        start = clock()
        for _ in range(calls):
            fn()
        return (clock() - start) / calls

    return time_call


def cuda_events(fn: Callable[[], Any], device: Any = None, calls: int = 1) -> TimeCall:
    """A :data:`TimeCall` timing ``calls`` calls of ``fn`` on ``device``'s current CUDA stream
    with CUDA events (synchronised before and after, so queued work is neither missed nor
    counted twice); returns seconds per call."""
    import torch

    def time_call() -> float:
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / calls  # elapsed_time is in ms

    return time_call
