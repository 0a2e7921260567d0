"""CLIP-Q: clip-quantize by hand, the budgeted choice, and the fine-tuned result."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.deepcomp.clipq import ClipQConfig, choose, clip_quantize, clipq_, estimated_bits
from torchslim.errors import UserError


def test_clip_quantize_by_hand():
    w = torch.tensor([0.1, 0.2, 0.9, 1.0, -0.1, -0.5, -0.6, -2.0])
    # p = 0.5: the 2 smallest positives (0.1, 0.2) and 2 smallest-magnitude negatives (-0.1, -0.5) go.
    # b = 2: 3 bins of width (1.0 - -2.0) / 3 = 1 over [-2, 1]: {-2.0}, {-0.6}, {0.9, 1.0} -> means.
    out = clip_quantize(w, 0.5, 2)
    assert out.tolist() == pytest.approx([0, 0, 0.95, 0.95, 0, 0, -0.6, -2.0])
    assert (out == 0).sum() == 4 and torch.all(out[out == 0].view(torch.int32) == 0)


def test_levels_are_bounded_by_bits():
    out = clip_quantize(torch.randn(1000), 0.3, 3)
    assert torch.unique(out[out != 0]).numel() <= 7
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)


def test_choose_solves_a_small_knapsack():
    # Two layers, budget 10 bits: the cheapest feasible mix minimising loss is (a: 6 bits, b: 4 bits).
    scores = {"a": [(0.0, 8.0, "a8"), (0.1, 6.0, "a6"), (1.0, 2.0, "a2")],
              "b": [(0.0, 8.0, "b8"), (0.3, 4.0, "b4"), (0.5, 2.0, "b2")]}
    assert choose(scores, 10.0) == {"a": 1, "b": 1}
    with pytest.raises(UserError, match="unreachable"):
        choose(scores, 3.0)


def test_estimated_bits():
    assert estimated_bits(1000, 0.0, 4) == 4000
    assert estimated_bits(1000, 0.5, 4) == pytest.approx(1000 * (0.5 * 4 + 1.0))


def test_clipq_step_meets_its_budget_estimate(tiny_data):
    model, _ = small_model("lenet300")
    ctx = Context((torch.zeros(1, 1, 28, 28),), data=tiny_data, progress=False)
    config = ClipQConfig(target_ratio=30, epochs=1, calibration_samples=128, clip_rates=(0.0, 0.8, 0.95),
                         bits=(3, 5))
    details = clipq_(model, config, ctx).details
    assert details["estimated_ratio"] >= 30
    for name, info in details["layers"].items():
        w = model.get_submodule(name).weight.detach()
        assert torch.unique(w[w != 0]).numel() <= 2 ** info["bits"] - 1
        assert (w == 0).float().mean().item() == pytest.approx(info["clip_rate"], abs=0.02)
    assert not any(hasattr(m, "parametrizations") for m in model.modules() if isinstance(m, nn.Linear))
