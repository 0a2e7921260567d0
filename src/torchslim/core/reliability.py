"""Is a latency figure trustworthy? Spread of the repeats, warm-up, and other processes' CPU use.

A figure is flagged unreliable (``reliable: false`` + the reasons, joined by "; ") when
- its repeats disagree: p90 / p50 above ``MAX_P90_OVER_P50``;
- its warm-up hit the bound without settling (:mod:`torchslim.core.warmup`);
- the machine was busy: other processes (and the hypervisor's steal time) used more CPU
  while it was measured than the cores the measurement left free, plus ``SLACK_CORES``.
  Measured from ``/proc/stat`` (all CPUs' busy time) minus this process's own CPU time
  (``time.process_time``, every thread of ours, ONNX Runtime's included) over the
  measurement's wall time, when that spans at least ``MIN_SAMPLE_SECONDS`` (the kernel counts
  in 10 ms ticks). Shorter measurements, and systems without ``/proc/stat``, fall back to the
  1-minute load average above the core count (which also counts this process's recent work,
  so it only catches heavy contention).

Hand-written: psutil would read the same counters, but is not a dependency and the arithmetic
is five lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_P90_OVER_P50 = 1.5
SLACK_CORES = 0.5
MIN_SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class CpuSample:
    """Wall time, all CPUs' busy seconds (None if unknown), this process's CPU seconds."""

    wall_s: float
    busy_s: float | None
    own_s: float


def _busy_seconds(stat_path: str = "/proc/stat") -> float | None:
    """Busy seconds of all CPUs since boot: user + nice + system + irq + softirq + steal."""
    try:
        with open(stat_path, encoding="ascii") as file:
            fields = file.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_sample() -> CpuSample:
    return CpuSample(time.perf_counter(), _busy_seconds(), time.process_time())


def other_cores(start: CpuSample, end: CpuSample,
                load_average: Callable[[], float] = lambda: os.getloadavg()[0]) -> tuple[float | None, str]:
    """Cores other processes kept busy between two samples, and how that was known
    ("proc_stat" or "load_average"; None and "unknown" when neither is available)."""
    wall = end.wall_s - start.wall_s
    if start.busy_s is not None and end.busy_s is not None and wall >= MIN_SAMPLE_SECONDS:
        others = (end.busy_s - start.busy_s) - (end.own_s - start.own_s)
        return max(0.0, others / wall), "proc_stat"
    try:
        return load_average(), "load_average"
    except OSError:
        return None, "unknown"


@dataclass(frozen=True)
class Reliability:
    reliable: bool
    reason: str | None  # the reasons, "; "-joined; None when reliable


def assess(p50: float, p90: float, settled: bool | None, others: tuple[float | None, str],
           threads: int, cores: int | None = None) -> Reliability:
    """Flag a figure (module docstring). ``others``: :func:`other_cores`' answer; ``threads``:
    the threads the measurement itself used; ``cores``: the machine's (None: ``os.cpu_count()``)."""
    cores = cores or os.cpu_count() or 1
    reasons = []
    if p50 > 0 and p90 / p50 > MAX_P90_OVER_P50:
        reasons.append(f"p90/p50 = {p90 / p50:.2f} above {MAX_P90_OVER_P50}")
    if settled is False:
        reasons.append("warm-up did not settle within its bound")
    busy, source = others
    if busy is not None:
        if source == "proc_stat" and busy > max(cores - threads, 0) + SLACK_CORES:
            reasons.append(f"other processes kept {busy:.1f} of {cores} cores busy while timing {threads} thread(s)")
        elif source == "load_average" and busy > cores:
            reasons.append(f"load average {busy:.1f} above the {cores} cores")
    return Reliability(not reasons, "; ".join(reasons) or None)
