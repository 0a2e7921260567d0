"""CLIP-Q: clip-quantize by hand, the budgeted choice, and the fine-tuned result."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.quant import ClipQConfig, clipq_
from torchslim.quant.clipq import choose, clip_quantize, estimated_bits
from torchslim.train import TrainConfig


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
    config = ClipQConfig(target_size=30, finetune=TrainConfig(epochs=1), calibration_samples=128,
                         clip_rates=(0.0, 0.8, 0.95), bits=(3, 5))
    clipq_(model, config, ctx)
    details = ctx.results[-1].details
    assert details["estimated_size_reduction"] >= 30 and len(details["val_accuracy"]) == 1
    for name, info in details["layers"].items():
        w = model.get_submodule(name).weight.detach()
        assert torch.unique(w[w != 0]).numel() <= 2 ** info["bits"] - 1
        assert (w == 0).float().mean().item() == pytest.approx(info["clip_rate"], abs=0.02)
    assert not any(hasattr(m, "parametrizations") for m in model.modules() if isinstance(m, nn.Linear))


def test_clipq_restores_each_modules_own_mode(tiny_data):
    # Scoring runs in eval mode; afterwards a BatchNorm frozen in eval inside a training model
    # must still be in eval (model.train(was_training) would have switched it to training).
    from torchslim.zoo import create_model

    torch.manual_seed(0)
    model = create_model("lenet5", batch_norm=True).train()
    frozen = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert frozen
    for m in frozen:
        m.eval()
    ctx = Context((torch.zeros(1, 1, 28, 28),), data=tiny_data, progress=False)
    clipq_(model, {"target_size": 8, "finetune": {"epochs": 0}, "calibration_samples": 32,
                   "clip_rates": [0.5], "bits": [4]}, ctx)
    assert model.training and all(not m.training for m in frozen)


def test_target_size_is_a_factor_above_one():
    with pytest.raises(UserError, match=r"field 'target_size' must be > 1"):
        ClipQConfig.from_dict({"target_size": 0.5})
