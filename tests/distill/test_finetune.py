"""The ``finetune`` recipe step: registered, validated from YAML, and distilling from the
caller's original model inside ``compress``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim.pipeline import compress
from torchslim.core import Context, techniques
from torchslim.data import load_dataset
from torchslim.distill import FinetuneConfig, finetune_
from torchslim.errors import UserError
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.recipes.schema import parse_recipe
from torchslim.train import evaluate, fit


def _model(hidden: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def test_registered_and_parsed_from_a_recipe():
    assert "finetune" in techniques()
    recipe = parse_recipe({"model": "zoo:lenet5", "data": "mnist5k",
                           "steps": [{"finetune": {"epochs": 1, "distill": "kd", "temperature": 2}}]})
    (step,) = recipe.steps
    assert step == FinetuneConfig(epochs=1, distill="kd", temperature=2.0)
    with pytest.raises(UserError, match=r"steps\[1\] \(finetune\): field 'alpha' must be in \[0, 1\]"):
        parse_recipe({"model": "zoo:lenet5", "steps": [{"finetune": {"alpha": 2}}]})
    with pytest.raises(UserError, match=r"field 'distill' must be one of"):
        parse_recipe({"model": "zoo:lenet5", "steps": [{"finetune": {"distill": "dark"}}]})


def test_finetune_in_compress_distills_from_the_callers_model():
    data = load_dataset("digits")
    original = _model()
    fit(original, data.train, epochs=4, lr=0.05, progress=False)
    original.eval()
    state = {k: v.clone() for k, v in original.state_dict().items()}
    result = compress(original, [("finetune", {"epochs": 2, "lr": 0.02, "distill": "kd"})], data=data,
                      example_inputs=data.test.tensors[0][:1], measure=MeasureConfig(runtimes=()), progress=False)
    (step,) = result.report.steps
    assert step.technique == "finetune" and step.details["distill"] == "kd"
    assert len(step.details["train_loss"]) == 2 and len(step.details["val_accuracy"]) == 2
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in state.items())  # caller's model untouched
    assert result.model is not original and evaluate(result.model, data.test) > 0.9


def test_finetune_errors_without_data_or_teacher():
    model = _model()
    ctx = Context((torch.zeros(1, 1, 8, 8),))
    with pytest.raises(UserError, match="needs training data"):
        finetune_(model, FinetuneConfig(), ctx)
    ctx.data = load_dataset("digits")
    with pytest.raises(UserError, match="needs the original model as teacher"):
        finetune_(model, FinetuneConfig(distill="kd"), ctx)


def test_the_one_helper_runs_the_callers_hooks_in_every_stage():
    from torchslim.train import TrainConfig

    model = _model()
    ctx = Context((torch.zeros(1, 1, 8, 8),))
    assert finetune_(model, None, ctx) == {} and finetune_(model, TrainConfig(epochs=0), ctx) == {}  # no data needed
    ctx.data, ctx.teacher, ctx.progress = load_dataset("digits"), _model(), False
    steps, extra = [], []

    def count_loss(step):
        extra.append(step.step)
        return step.outputs.sum() * 0.0

    details = finetune_(model, TrainConfig(epochs=1, batch_size=256, distill="fitnets", hint_layer="1"), ctx,
                        after_step=[lambda step: steps.append(step.step)], extra_losses=[count_loss])
    batches = -(-len(ctx.data.train) // 256)
    # fitnets: stage 1 (hints, 1 epoch) and stage 2 (kd, 1 epoch) both see the hooks
    assert len(steps) == len(extra) == 2 * batches
    assert details["distill"] == "fitnets" and details["hint_layer"] == "1"
