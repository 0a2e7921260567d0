"""compare_interleaved on a fake clock (exact ratios, warm-up counted) and decide's conservative rule."""

from __future__ import annotations

import pytest
import torch

from torchslim.core.timing import Comparison, compare_interleaved, decide


class FakeClock:
    """A clock that only moves when a fake workload advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float):
        def run() -> None:
            self.now += seconds

        return run


def test_compare_interleaved_measures_the_exact_ratio_after_a_settled_warm_up():
    clock = FakeClock()
    result = compare_interleaved(clock.work(2e-3), clock.work(1e-3), rounds=4, clock=clock)
    assert result.speedup == pytest.approx(2.0) and result.min_ratio == pytest.approx(2.0)
    assert result.baseline_ms == pytest.approx(2.0) and result.candidate_ms == pytest.approx(1.0)
    assert result.spread == pytest.approx(0.0) and result.rounds == 4
    # constant timings settle as soon as two windows of 3 bursts exist
    assert result.warmup_runs == (6, 6) and result.settled and result.reliable


def test_a_warm_up_that_never_settles_makes_the_comparison_unreliable():
    clock = FakeClock()
    calls = [0]

    def slowing() -> None:  # each call 10% slower than the last: windows of bursts never agree
        calls[0] += 1
        clock.now += 1e-3 * 1.1 ** calls[0]

    result = compare_interleaved(slowing, clock.work(1e-3), rounds=3, clock=clock)
    assert not result.settled and not result.reliable
    assert "warm-up did not settle" in result.unreliable_reason
    assert result.warmup_runs[1] == 6


def comparison(speedup: float, min_ratio: float, spread: float, settled: bool = True) -> Comparison:
    return Comparison(1.0, 1.0 / speedup, speedup, spread, 5, min_ratio, (6, 6), settled)


def test_decide_keeps_a_reliable_median_speedup():
    details, warnings = {}, []
    assert decide("fc", {}, lambda: comparison(1.3, 0.9, 0.3), 1.1, details, warnings)
    assert details["fc"]["chosen"] and details["fc"]["reliable"] and details["fc"]["unreliable_reason"] is None
    assert warnings == []


@pytest.mark.parametrize("result", [comparison(1.3, 0.9, 0.8), comparison(1.3, 0.9, 0.3, settled=False)])
def test_an_unreliable_measurement_keeps_the_conservative_choice_and_says_so(result):
    details, warnings = {}, []
    assert not decide("fc", {}, lambda: result, 1.1, details, warnings)
    assert details["fc"]["chosen"] is False and details["fc"]["reliable"] is False
    assert details["fc"]["min_ratio"] == 0.9 and details["fc"]["unreliable_reason"]
    assert len(warnings) == 1 and warnings[0].startswith("fc: timing unreliable") and "worst round 0.90x" in warnings[0]


def test_an_unreliable_measurement_still_takes_a_candidate_faster_in_every_round():
    details, warnings = {}, []
    assert decide("fc", {}, lambda: comparison(3.0, 2.0, 0.9), 1.1, details, warnings)
    assert details["fc"]["chosen"] and not details["fc"]["reliable"] and len(warnings) == 1


def test_a_pinned_decision_is_not_measured():
    details: dict = {}

    def never() -> Comparison:
        raise AssertionError("timed a pinned decision")

    assert decide("fc", {"fc": True}, never, 1.1, details, []) is True
    assert details == {"fc": {"chosen": True, "source": "pinned"}}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_work_on_a_cuda_device_is_timed_with_cuda_events():
    x = torch.randn(256, 256, device="cuda")
    result = compare_interleaved(lambda: x @ x @ x, lambda: x @ x, rounds=3, device=x.device)
    assert result.baseline_ms > 0 and result.candidate_ms > 0 and result.warmup_runs[0] >= 1
