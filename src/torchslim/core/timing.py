"""Decisions taken from timings: one interleaved comparison, recorded and pinnable.

Some steps keep a change only if it is measured faster here (a factorized layer, a CSR
kernel). Every such decision goes through :func:`compare_interleaved` (bursts of one
callable then the other, alternating, median of the per-round ratios, so both see the same
background load; each side first warmed up in such bursts until they settle,
:mod:`torchslim.core.warmup`) and :func:`decide`, which writes what was measured into the step
details, keeps the conservative choice when the measurement is unreliable (ratios that spread
more than ``NOISY_SPREAD``, or a warm-up that did not settle) and honours a decision pinned in
the recipe, so a rerun on another machine builds the same model. Hand-written because :func:`torchslim.profiler.measure_latency` times one whole model
per call and costs ~10x more than a layer-level comparison needs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from torchslim.core.warmup import Settle, cuda_events, wall_clock, warm_up

# A comparison whose per-round ratios spread more than this (max - min over median) is unreliable.
NOISY_SPREAD = 0.5


@dataclass(frozen=True)
class Comparison:
    """``speedup`` = median over rounds of t(baseline) / t(candidate); ``min_ratio`` = the
    smallest of those ratios; ``spread`` = (max - min) / median. ``warmup_runs`` (baseline,
    candidate) bursts warmed each up; ``settled``: both warm-ups settled."""

    baseline_ms: float
    candidate_ms: float
    speedup: float
    spread: float
    rounds: int
    min_ratio: float = 0.0
    warmup_runs: tuple[int, int] = (0, 0)
    settled: bool = True

    @property
    def unreliable_reason(self) -> str | None:
        reasons = [f"ratio spread {self.spread:.2f} over {self.rounds} rounds above {NOISY_SPREAD}"] \
            if self.spread > NOISY_SPREAD else []
        if not self.settled:
            reasons.append("warm-up did not settle within its bound")
        return "; ".join(reasons) or None

    @property
    def reliable(self) -> bool:
        return self.unreliable_reason is None

    def to_dict(self) -> dict[str, Any]:
        return {"baseline_ms": round(self.baseline_ms, 5), "candidate_ms": round(self.candidate_ms, 5),
                "speedup": round(self.speedup, 3), "min_ratio": round(self.min_ratio, 3),
                "spread": round(self.spread, 3), "rounds": self.rounds, "warmup_runs": list(self.warmup_runs),
                "reliable": self.reliable, "unreliable_reason": self.unreliable_reason}


def compare_interleaved(baseline: Callable[[], Any], candidate: Callable[[], Any], *, rounds: int = 5,
                        burst_seconds: float = 0.01, max_calls: int = 50, threads: int | None = None,
                        device: torch.device | str | None = None, clock: Callable[[], float] | None = None
                        ) -> Comparison:
    """Time ``baseline()`` against ``candidate()`` in alternating bursts of ~``burst_seconds``,
    each warmed up in such bursts until they settle (at most 10 x ``burst_seconds``).
    Work on a CUDA ``device`` is timed with CUDA events; otherwise ``clock``
    (``time.perf_counter`` unless a test injects one)."""
    cuda = device is not None and torch.device(device).type == "cuda"

    def timer(fn: Callable[[], Any], calls: int) -> Callable[[], float]:
        return cuda_events(fn, device, calls) if cuda else wall_clock(fn, calls, clock or time.perf_counter)

    settle = Settle(window=3, tolerance=0.1, min_runs=0, max_runs=30, max_seconds=10 * burst_seconds)

    def calls_per_burst(seconds_per_pair: float) -> int:
        return max(1, min(max_calls, int(burst_seconds / max(seconds_per_pair, 1e-7))))

    def pair(calls: int) -> tuple[float, float]:
        return timer(baseline, calls)(), timer(candidate, calls)()

    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        calls = calls_per_burst(sum(pair(1)) / 2)  # the first calls: allocations, lazy initialisation
        warm = warm_up(timer(baseline, calls), settle), warm_up(timer(candidate, calls), settle)
        calls = calls_per_burst(sorted(sum(pair(1)) for _ in range(3))[1])
        pairs = [pair(calls) for _ in range(rounds)]
    finally:
        torch.set_num_threads(previous)
    ratios = [b / max(c, 1e-12) for b, c in pairs]
    median = statistics.median(ratios)
    return Comparison(1e3 * statistics.median(b for b, _ in pairs), 1e3 * statistics.median(c for _, c in pairs),
                      median, (max(ratios) - min(ratios)) / max(median, 1e-12), rounds, min(ratios),
                      (warm[0].runs, warm[1].runs), bool(warm[0].settled and warm[1].settled))


def decide(name: str, pinned: Mapping[str, bool], measure: Callable[[], Comparison], min_speedup: float,
           details: dict[str, Any], warnings: list[str]) -> bool:
    """Use the candidate for ``name``? A pinned value wins; else measure and keep it if
    ``speedup >= min_speedup`` - or, when the measurement is unreliable, only if the candidate
    was that much faster in every round (``min_ratio``: the conservative choice). Writes
    ``details[name]`` (``chosen``, ``source``, the timing, ``reliable``) and a warning when unreliable."""
    if name in pinned:
        details[name] = {"chosen": bool(pinned[name]), "source": "pinned"}
        return bool(pinned[name])
    result = measure()
    chosen = (result.speedup if result.reliable else result.min_ratio) >= min_speedup
    details[name] = {"chosen": chosen, "source": "measured", **result.to_dict()}
    if not result.reliable:
        warnings.append(f"{name}: timing unreliable ({result.unreliable_reason}; median speedup "
                        f"{result.speedup:.2f}x, worst round {result.min_ratio:.2f}x); kept the candidate only if "
                        f"every round was >= {min_speedup}x; pin the decision to make it reproducible")
    return chosen


def pinned_names(pinned: Mapping[str, bool], known: set[str], field: str = "decisions") -> None:
    """A pinned name that is not a candidate layer is a user error naming the close matches."""
    from torchslim.core.select import unknown_name_error

    for name in pinned:
        if name not in known:
            raise unknown_name_error(field, name, known)
