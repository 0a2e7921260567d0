"""The settle rule and the timing loop on injected sequences of timings (hand-computed; no real times)."""

from __future__ import annotations

import pytest

from torchslim.core.warmup import Settle, has_settled, time_calls, wall_clock, warm_up


def sequence(*seconds: float):
    """A ``time_call`` returning the given durations in order (and counting its calls)."""
    values = iter(seconds)

    def time_call() -> float:
        time_call.calls += 1
        return next(values)

    time_call.calls = 0
    return time_call


def test_has_settled_compares_the_medians_of_the_last_two_windows():
    assert not has_settled([5, 5, 5, 5, 5], window=3, tolerance=0.1)  # fewer than two windows
    assert has_settled([9, 4, 4, 4.2, 3.9, 4.4], window=3, tolerance=0.1)  # medians 4 and 4.2: 5%
    assert not has_settled([9, 4, 4, 4.5, 3.9, 4.6], window=3, tolerance=0.1)  # 4 and 4.5: 12.5%
    assert has_settled([2.0, 1.0], window=1, tolerance=1.0)


def test_warm_up_stops_once_the_windows_agree():
    # ORT-like: slow first runs, then flat. Windows of 3, tolerance 10%:
    # 6 runs: medians 8 ([10, 8, 6]) vs 3 ([4, 3, 3]); 7: 6 vs 3; 8: 4 vs 3; 9: 3 vs 3 -> settled.
    calls = sequence(10, 8, 6, 4, 3, 3, 3, 3, 3, 3, 3, 3)
    done = warm_up(calls, Settle(window=3, tolerance=0.1, min_runs=3, max_seconds=1e9))
    assert (done.runs, done.settled, done.seconds) == (9, True, 43)
    assert calls.calls == 9


def test_min_runs_holds_even_when_settled_earlier():
    done = warm_up(sequence(*[1.0] * 20), Settle(window=2, min_runs=7, max_seconds=1e9))
    assert (done.runs, done.settled) == (7, True)


def test_warm_up_is_bounded_by_runs_and_by_seconds():
    alternating = [1.0, 3.0] * 50  # medians of windows of 3 alternate 1 / 3: never settles
    assert warm_up(sequence(*alternating), Settle(max_runs=10, max_seconds=1e9)).runs == 10
    done = warm_up(sequence(*alternating), Settle(max_runs=60, max_seconds=7.5))
    # stops at the first call that brings the total to >= 7.5 s: 1 + 3 + 1 + 3 = 8
    assert (done.runs, done.settled, done.seconds) == (4, False, 8.0)


def test_a_fixed_count_is_not_checked():
    done = warm_up(sequence(5, 1, 9), 3)
    assert (done.runs, done.settled, done.seconds) == (3, None, 15)
    assert warm_up(sequence(), 0).runs == 0
    with pytest.raises(ValueError):
        warm_up(sequence(), -1)


def test_settle_rejects_bounds_that_cannot_settle():
    with pytest.raises(ValueError, match="max_runs"):
        Settle(window=5, max_runs=9)
    with pytest.raises(ValueError, match="tolerance"):
        Settle(tolerance=0.0)


def test_time_calls_stops_at_the_time_budget_after_min_repeats():
    assert time_calls(sequence(*[1.0] * 10), repeats=10, min_repeats=3, max_seconds=0.0) == [1.0] * 3
    assert time_calls(sequence(*[1.0] * 10), repeats=10, min_repeats=1, max_seconds=4.5) == [1.0] * 5
    assert len(time_calls(sequence(*[1.0] * 10), repeats=6)) == 6


def test_wall_clock_times_bursts_per_call():
    ticks = iter([10.0, 16.0])
    calls = []
    time_call = wall_clock(lambda: calls.append(1), calls=3, clock=lambda: next(ticks))
    assert time_call() == 2.0 and len(calls) == 3
