"""Decisions taken from timings: one interleaved comparison, recorded and pinnable.

Some steps keep a change only if it is measured faster here (a factorized layer, a CSR
kernel). Every such decision goes through :func:`compare_interleaved` (bursts of one
callable then the other, alternating, median of the per-round ratios, so both see the same
background load) and :func:`decide`, which writes what was measured into the step details
and honours a decision pinned in the recipe, so a rerun on another machine builds the same
model. Hand-written because :func:`torchslim.profiler.measure_latency` times one whole model
per call and costs ~10x more than a layer-level comparison needs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

# A comparison whose per-round ratios spread more than this (max - min over median) is flagged.
NOISY_SPREAD = 0.5


@dataclass(frozen=True)
class Comparison:
    """``speedup`` = median over rounds of t(baseline) / t(candidate); ``spread`` = (max - min) / median."""

    baseline_ms: float
    candidate_ms: float
    speedup: float
    spread: float
    rounds: int

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY_SPREAD

    def to_dict(self) -> dict[str, Any]:
        return {"baseline_ms": round(self.baseline_ms, 5), "candidate_ms": round(self.candidate_ms, 5),
                "speedup": round(self.speedup, 3), "spread": round(self.spread, 3), "rounds": self.rounds}


def compare_interleaved(baseline: Callable[[], Any], candidate: Callable[[], Any], *, rounds: int = 5,
                        burst_seconds: float = 0.01, max_calls: int = 50, threads: int | None = None) -> Comparison:
    """Time ``baseline()`` against ``candidate()`` in alternating bursts of ~``burst_seconds``."""

    def burst(fn: Callable[[], Any], calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        burst(baseline, 1), burst(candidate, 1)  # warm-up: allocations, lazy initialisation
        single = sorted(burst(baseline, 1) + burst(candidate, 1) for _ in range(3))[1]
        calls = max(1, min(max_calls, int(burst_seconds / max(single, 1e-7))))
        pairs = [(burst(baseline, calls), burst(candidate, calls)) for _ in range(rounds)]
    finally:
        torch.set_num_threads(previous)
    ratios = [b / max(c, 1e-12) for b, c in pairs]
    median = statistics.median(ratios)
    return Comparison(1e3 * statistics.median(b for b, _ in pairs), 1e3 * statistics.median(c for _, c in pairs),
                      median, (max(ratios) - min(ratios)) / max(median, 1e-12), rounds)


def decide(name: str, pinned: Mapping[str, bool], measure: Callable[[], Comparison], min_speedup: float,
           details: dict[str, Any], warnings: list[str]) -> bool:
    """Use the candidate for ``name``? A pinned value wins; else measure and keep it if
    ``speedup >= min_speedup``. Writes ``details[name]`` (``chosen``, ``source``, the timing)
    and a warning when the measurement was noisy."""
    if name in pinned:
        details[name] = {"chosen": bool(pinned[name]), "source": "pinned"}
        return bool(pinned[name])
    result = measure()
    chosen = result.speedup >= min_speedup
    details[name] = {"chosen": chosen, "source": "measured", **result.to_dict()}
    if result.noisy:
        warnings.append(f"{name}: timing spread {result.spread:.2f} over {result.rounds} rounds is large "
                        f"(speedup {result.speedup:.2f}x); pin the decision to make it reproducible")
    return chosen


def pinned_names(pinned: Mapping[str, bool], known: set[str], field: str = "decisions") -> None:
    """A pinned name that is not a candidate layer is a user error naming the close matches."""
    from torchslim.core.select import unknown_name_error

    for name in pinned:
        if name not in known:
            raise unknown_name_error(field, name, known)
