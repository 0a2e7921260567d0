"""Is a latency figure trustworthy? Spread of the repeats, warm-up, and contention for the CPUs.

A figure is flagged unreliable (``reliable: false`` + the reasons, joined by "; ") when
- its repeats disagree: p90 / p50 above ``MAX_P90_OVER_P50``;
- its warm-up hit the bound without settling (:mod:`torchslim.core.warmup`);
- the machine was busy while it was measured, judged by the best signal available:
  1. Linux CPU pressure (``/proc/pressure/cpu``, "some" total, in microseconds): the share of
     the measurement's wall time during which some task was runnable but waited for a CPU,
     above ``MAX_CPU_WAIT``; this is contention itself, ours included (more threads than cores);
  2. else all CPUs' busy time (``/proc/stat``, user + nice + system + irq + softirq + steal)
     minus this process's own CPU time (``time.process_time``, all our threads, ONNX Runtime's
     included) over the wall time, i.e. the cores other processes (and the hypervisor) took,
     above the cores the measurement left free plus ``SLACK_CORES``; only when the
     measurement spans ``MIN_SAMPLE_SECONDS`` (the kernel counts in 10 ms ticks);
  3. else the 1-minute load average above the core count (it also counts this process's
     recent work, so it only catches heavy contention).

Hand-written: psutil reads the same counters but is not a dependency, and the arithmetic is a
few lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from torchslim.core.limits import cpu_cores

MAX_P90_OVER_P50 = 1.5
SLACK_CORES = 0.5
MIN_SAMPLE_SECONDS = 0.5
MAX_CPU_WAIT = 0.1


@dataclass(frozen=True)
class CpuSample:
    """Wall time, all CPUs' busy seconds, this process's CPU seconds, seconds some task waited
    for a CPU (None where the system does not say)."""

    wall_s: float
    busy_s: float | None
    own_s: float
    wait_s: float | None = None


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


def _cpu_wait_seconds(pressure_path: str = "/proc/pressure/cpu") -> float | None:
    """Seconds since boot during which some task waited for a CPU (PSI "some total", in us)."""
    try:
        with open(pressure_path, encoding="ascii") as file:
            for line in file:
                if line.startswith("some "):
                    return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_sample() -> CpuSample:
    return CpuSample(time.perf_counter(), _busy_seconds(), time.process_time(), _cpu_wait_seconds())


@dataclass(frozen=True)
class Contention:
    """How busy the CPUs were during a measurement (module docstring; None: not known):
    ``cpu_wait_fraction`` of the wall time some task waited for a CPU, ``other_cores`` kept
    busy by other processes, the 1-minute ``load_average``."""

    cpu_wait_fraction: float | None = None
    other_cores: float | None = None
    load_average: float | None = None


def contention(start: CpuSample, end: CpuSample,
               load_average: Callable[[], float] = lambda: os.getloadavg()[0]) -> Contention:
    """What the system says about the CPUs between two samples."""
    wall = max(end.wall_s - start.wall_s, 1e-9)
    wait = None
    if start.wait_s is not None and end.wait_s is not None:
        wait = min(1.0, max(0.0, (end.wait_s - start.wait_s) / wall))
    others = None
    if start.busy_s is not None and end.busy_s is not None and wall >= MIN_SAMPLE_SECONDS:
        others = max(0.0, ((end.busy_s - start.busy_s) - (end.own_s - start.own_s)) / wall)
    try:
        load = load_average()
    except OSError:
        load = None
    return Contention(wait, others, load)


@dataclass(frozen=True)
class Reliability:
    reliable: bool
    reason: str | None  # the reasons, "; "-joined; None when reliable


def assess(p50: float, p90: float, settled: bool | None, busy: Contention, threads: int,
           cores: int | None = None) -> Reliability:
    """Flag a figure (module docstring). ``busy``: :func:`contention` over the measurement;
    ``threads``: the threads it used; ``cores``: the machine's (None: :func:`~torchslim.core.limits.cpu_cores`)."""
    cores = cores or cpu_cores()
    reasons = []
    if p50 > 0 and p90 / p50 > MAX_P90_OVER_P50:
        reasons.append(f"p90/p50 = {p90 / p50:.2f} above {MAX_P90_OVER_P50}")
    if settled is False:
        reasons.append("warm-up did not settle within its bound")
    if busy.cpu_wait_fraction is not None:
        if busy.cpu_wait_fraction > MAX_CPU_WAIT:
            reasons.append(f"tasks waited for a CPU {100 * busy.cpu_wait_fraction:.0f}% of the time (CPU pressure)")
    elif busy.other_cores is not None:
        if busy.other_cores > max(cores - threads, 0) + SLACK_CORES:
            reasons.append(f"other processes kept {busy.other_cores:.1f} of {cores} cores busy "
                           f"while timing {threads} thread(s)")
    elif busy.load_average is not None and busy.load_average > cores:
        reasons.append(f"load average {busy.load_average:.1f} above the {cores} cores")
    return Reliability(not reasons, "; ".join(reasons) or None)
