"""measure_latency: consistent stats in both runtimes (no timing thresholds: shared machines)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.profiler import RUNTIMES, measure_latency
from torchslim.profiler.latency import batch_inputs


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stats_are_consistent(runtime):
    model = _tiny().train()
    threads_before = torch.get_num_threads()
    x = torch.randn(1, 3, 8, 8)
    stats = measure_latency(model, x, runtime=runtime, threads=1, batch_size=4, warmup=1, repeats=7)
    assert stats.runtime == runtime and stats.batch_size == 4 and stats.threads == 1
    assert stats.repeats == 7 and stats.warmup == 1
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
