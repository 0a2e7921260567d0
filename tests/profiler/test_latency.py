"""measure_latency: consistent stats in both runtimes, the settle warm-up, the reliability flag,
the device and provider each figure came from (no timing thresholds: shared machines; exact
figures only through an injected clock)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import torchslim.profiler.latency as latency
from torchslim.core.reliability import Contention
from torchslim.core.warmup import Settle
from torchslim.errors import UserError
from torchslim.profiler import RUNTIMES, measure_latency
from torchslim.profiler.latency import CPU_PROVIDER, CUDA_PROVIDER, batch_inputs, ort_providers

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stats_are_consistent(runtime):
    model = _tiny().train()
    threads_before = torch.get_num_threads()
    x = torch.randn(1, 3, 8, 8)
    stats = measure_latency(model, x, runtime=runtime, threads=1, batch_size=4, warmup=1, repeats=7)
    assert stats.runtime == runtime and stats.batch_size == 4 and stats.threads == 1
    assert stats.repeats == 7 and stats.warmup == 1 and stats.warmup_settled is None  # a fixed count
    assert stats.device == "cpu" and stats.provider == (None if runtime == "eager" else CPU_PROVIDER)
    assert stats.reliable == (stats.unreliable_reason is None)
    assert 0 < stats.latency_ms_p50 <= stats.latency_ms_p90
    assert stats.latency_ms_mean > 0
    assert json.loads(json.dumps(stats.to_dict()))["latency_ms_p50"] == stats.latency_ms_p50
    assert torch.get_num_threads() == threads_before
    assert model.training  # restored


def test_time_budget_stops_early_but_not_before_min_repeats():
    stats = measure_latency(_tiny(), torch.randn(1, 3, 8, 8), repeats=1000, min_repeats=3, max_seconds=0.0)
    assert stats.repeats == 3


def test_default_batch_is_the_inputs():
    stats = measure_latency(_tiny(), torch.randn(2, 3, 8, 8), repeats=2, warmup=0)
    assert stats.batch_size == 2


def test_batch_inputs_repeats_along_dim0():
    x = torch.arange(6.0).reshape(2, 3)
    (batched, flag), size = batch_inputs((x, True), 5)
    assert size == 5 and flag is True
    assert torch.equal(batched, torch.cat([x, x, x])[:5])


def test_unknown_runtime_lists_known_ones():
    with pytest.raises(UserError, match="tensorrt.*eager, onnxruntime"):
        measure_latency(_tiny(), torch.randn(1, 3, 8, 8), runtime="tensorrt")


def test_bad_input_shape_is_one_line_user_error():
    with pytest.raises(UserError, match="1x5") as info:
        measure_latency(_tiny(), torch.randn(1, 5), runtime="eager")
    assert "\n" not in str(info.value)


def test_default_warm_up_runs_until_two_windows_agree_and_records_it():
    stats = measure_latency(_tiny(), torch.randn(1, 3, 8, 8), repeats=3)
    assert stats.warmup >= 2 * Settle().window and stats.warmup_settled in (True, False)
    assert (stats.warmup_settled is False) == ("warm-up did not settle" in (stats.unreliable_reason or ""))


def fake_wall_clock(seconds: list[float]):
    """Replaces latency.wall_clock: each timed call runs the model and "takes" the next duration."""
    durations = iter(seconds)

    def wall_clock(fn, calls=1, clock=None):
        def time_call() -> float:
            fn()
            return next(durations)

        return time_call

    return wall_clock


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_figures_and_the_reliability_flag_from_an_injected_clock(runtime, monkeypatch):
    # warm-up: 5, 3, 1, 1, 1, 1 ms -> windows [5, 3, 1] / [1, 1, 1]: medians 3 / 1; then [3, 1, 1] / [1, 1, 1]
    # at 7 runs: 1 / 1 -> settled after 7. Timed: 1, 1, 1, 1, 4 ms: p50 1, p90 1 + 0.6 * 3 = 2.8, mean 1.6.
    ms = [5, 3, 1, 1, 1, 1, 1] + [1, 1, 1, 1, 4]
    monkeypatch.setattr(latency, "wall_clock", fake_wall_clock([m / 1e3 for m in ms]))
    monkeypatch.setattr(latency, "contention", lambda start, end: Contention(0.02, 0.2, 0.5))
    stats = measure_latency(_tiny(), torch.randn(1, 3, 8, 8), runtime=runtime, threads=1, repeats=5,
                            warmup=Settle(window=3, tolerance=0.1, min_runs=3))
    assert (stats.warmup, stats.warmup_settled, stats.repeats) == (7, True, 5)
    assert stats.latency_ms_p50 == pytest.approx(1.0) and stats.latency_ms_p90 == pytest.approx(2.8)
    assert stats.latency_ms_mean == pytest.approx(1.6)
    assert not stats.reliable and stats.unreliable_reason == "p90/p50 = 2.80 above 1.5"
    assert (stats.cpu_wait_fraction, stats.other_cores, stats.load_average) == (0.02, 0.2, 0.5)


def test_a_busy_machine_makes_a_tight_figure_unreliable(monkeypatch):
    monkeypatch.setattr(latency, "wall_clock", fake_wall_clock([1e-3] * 10))
    monkeypatch.setattr(latency, "contention", lambda start, end: Contention(cpu_wait_fraction=0.5))
    stats = measure_latency(_tiny(), torch.randn(1, 3, 8, 8), threads=1, warmup=2, repeats=5)
    assert stats.latency_ms_p50 == pytest.approx(1.0) and stats.latency_ms_p90 == pytest.approx(1.0)
    assert stats.unreliable_reason == "tasks waited for a CPU 50% of the time (CPU pressure)"

    monkeypatch.setattr(latency, "wall_clock", fake_wall_clock([1e-3] * 10))
    monkeypatch.setattr(latency, "contention", lambda start, end: Contention(cpu_wait_fraction=0.0))
    calm = measure_latency(_tiny(), torch.randn(1, 3, 8, 8), threads=1, warmup=2, repeats=5)
    assert calm.reliable and calm.unreliable_reason is None


@pytest.mark.parametrize("device, available, expected", [
    ("cuda", [CUDA_PROVIDER, CPU_PROVIDER], [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]),
    ("cuda:1", ["TensorrtExecutionProvider", CUDA_PROVIDER, CPU_PROVIDER],
     [(CUDA_PROVIDER, {"device_id": 1}), CPU_PROVIDER]),
    ("cuda:0", [CPU_PROVIDER], [CPU_PROVIDER]),  # onnxruntime without CUDA: CPU
    ("cpu", [CUDA_PROVIDER, CPU_PROVIDER], [CPU_PROVIDER]),  # ORT runs where the model is
])
def test_ort_provider_follows_the_device_and_what_is_installed(device, available, expected):
    assert ort_providers(torch.device(device), available) == expected


def test_ort_on_a_cpu_model_uses_the_cpu_provider_even_when_cuda_is_installed(monkeypatch):
    import onnxruntime

    asked = []
    real = latency.ort_providers
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    monkeypatch.setattr(latency, "ort_providers", lambda d, a: asked.append((d, list(a))) or real(d, a))
    stats = measure_latency(_tiny(), torch.randn(1, 3, 8, 8), runtime="onnxruntime", warmup=1, repeats=2)
    assert asked == [(torch.device("cpu"), [CUDA_PROVIDER, CPU_PROVIDER])]
    assert (stats.device, stats.provider) == ("cpu", CPU_PROVIDER)


@needs_cuda
def test_eager_on_cuda_is_timed_with_cuda_events():
    stats = measure_latency(_tiny().cuda(), torch.randn(1, 3, 8, 8), warmup=2, repeats=5)
    assert stats.device.startswith("cuda") and stats.provider is None and stats.latency_ms_p50 > 0


@needs_cuda
def test_ort_on_cuda_uses_the_cuda_provider_when_installed():
    import onnxruntime

    stats = measure_latency(_tiny().cuda(), torch.randn(1, 3, 8, 8), runtime="onnxruntime", warmup=2, repeats=5)
    cuda = CUDA_PROVIDER in onnxruntime.get_available_providers()
    assert stats.provider == (CUDA_PROVIDER if cuda else CPU_PROVIDER)
    assert stats.device == ("cuda:0" if cuda else "cpu")
