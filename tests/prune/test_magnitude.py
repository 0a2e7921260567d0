"""prune.magnitude: exact counts, Han's std rule, global ranking, AGP, masks held at +0.0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.pipeline import compress
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.prune import PruneMagnitudeConfig, prune_magnitude_
from torchslim.prune.magnitude import agp_fraction, global_counts, magnitude_mask
from torchslim.train import TrainConfig

NO_LATENCY = MeasureConfig(runtimes=())
NO_TRAINING = TrainConfig(epochs=0)


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _ctx(data=None, teacher=None) -> Context:
    return Context((torch.zeros(1, 1, 28, 28),), data=data, teacher=teacher, progress=False)


def test_magnitude_mask_removes_exactly_the_smallest():
    w = torch.tensor([[0.5, -0.1, 0.3], [-0.05, 2.0, -0.4]])
    assert magnitude_mask(w, 3).tolist() == [[True, False, False], [False, True, True]]


def test_global_counts_rank_all_layers_together():
    weights = {"a": torch.tensor([0.1, 0.2, 5.0]), "b": torch.tensor([0.15, 3.0, 4.0, -0.05])}
    assert global_counts(weights, 3) == {"a": 1, "b": 2}


def test_agp_fraction_is_zhu_gupta_cubic():
    assert [agp_fraction(p) for p in (0.0, 0.5, 1.0, 2.0)] == [0.0, 0.875, 1.0, 1.0]


@pytest.mark.parametrize("criterion", ["std", "uniform", "global"])
def test_oneshot_hits_the_target_and_zeros_are_positive(criterion):
    model, _ = small_model("lenet300")
    weights = {i: m.weight.detach().clone() for i, m in enumerate(_linears(model))}
    config = PruneMagnitudeConfig(criterion=criterion, quality=1.5, sparsity=0.9, schedule="oneshot",
                                  finetune=NO_TRAINING)
    ctx = _ctx()
    assert prune_magnitude_(model, config, ctx) is model
    details = ctx.results[-1].details
    for i, layer in enumerate(_linears(model)):
        w0, w = weights[i], layer.weight.detach()
        if criterion == "std":  # Han et al. 2015: remove |w| < quality * std(W)
            expected = int((w0.abs() < 1.5 * w0.std()).sum())
            assert int((w == 0).sum()) == expected
        elif criterion == "uniform":
            assert int((w == 0).sum()) == round(0.9 * w.numel())
        kept = w != 0
        assert torch.equal(w[kept], w0[kept])  # survivors untouched
        assert np.all(w[~kept].numpy().view(np.uint32) == 0)  # +0.0, not -0.0
    if criterion == "global":
        assert details["kept"] == details["weights"] - round(0.9 * details["weights"])


def test_agp_retraining_reaches_target_and_keeps_pruned_weights_zero(tiny_data):
    model, _ = small_model("lenet300")
    config = PruneMagnitudeConfig(criterion="uniform", sparsity=0.8, schedule="agp", rounds=3,
                                  finetune=TrainConfig(epochs=2, lr=0.01))
    ctx = _ctx(tiny_data)
    prune_magnitude_(model, config, ctx)
    assert ctx.results[-1].warnings == []  # the ramp completed inside the run
    seen = []
    for layer in _linears(model):
        assert int((layer.weight == 0).sum()) == round(0.8 * layer.weight.numel())
        seen.append(layer.weight.detach() == 0)
    # A second, milder step keeps every weight pruned by the first one.
    prune_magnitude_(model, {"criterion": "uniform", "sparsity": 0.5, "schedule": "oneshot",
                             "finetune": {"epochs": 1}}, ctx)
    for mask, layer in zip(seen, _linears(model)):
        assert torch.all(layer.weight.detach()[mask] == 0)


def test_finetune_with_kd_keeps_the_mask_exactly_and_distills(tiny_data, monkeypatch):
    import torchslim.distill.trainer as trainer

    calls = []
    kd_loss = trainer.kd_loss
    monkeypatch.setattr(trainer, "kd_loss", lambda *a, **k: calls.append(1) or kd_loss(*a, **k))
    teacher, _ = small_model("lenet300")
    model, _ = small_model("lenet300")
    steps = [("prune.magnitude", {"criterion": "uniform", "sparsity": 0.7, "schedule": "oneshot",
                                  "finetune": {"epochs": 1, "distill": "kd", "weight_decay": 0.01}})]
    result = compress(model, steps, data=tiny_data, measure=NO_LATENCY, progress=False)
    pruned = model  # compress copied it: the original weights tell which survived
    details = result.report.steps[0].details
    assert details["finetune"]["distill"] == "kd" and details["finetune"]["temperature"] == 4.0
    assert len(calls) == 4  # 256 examples, batch 64: one KD loss per optimizer step
    for before, after in zip(_linears(pruned), _linears(result.model)):
        w0, w = before.weight.detach(), after.weight.detach()
        kept = w0.abs() > w0.abs().flatten().kthvalue(round(0.7 * w0.numel())).values
        assert torch.equal(w != 0, kept)  # the mask exactly: pruned stay pruned, survivors stay non-zero
        assert np.all(w[~kept].numpy().view(np.uint32) == 0)  # +0.0 through momentum and weight decay
        assert not torch.equal(w[kept], w0[kept])  # and the survivors did train


def test_iterative_rounds_and_compress_report(tiny_data):
    model, _ = small_model("lenet300")
    step = ("prune.magnitude", {"criterion": "global", "sparsity": 0.9, "schedule": "iterative", "rounds": 2,
                                "finetune": {"epochs": 2}})
    result = compress(model, [step], data=tiny_data, measure=NO_LATENCY, progress=False)
    details = result.report.steps[0].details
    assert details["pruning_rate"] == pytest.approx(10.0, rel=0.01)
    assert len(details["val_accuracy"]) == 2 and len(details["finetune"]) == 2


def test_user_errors():
    model, _ = small_model("lenet300")
    with pytest.raises(UserError, match="needs training data"):
        prune_magnitude_(model, {"schedule": "oneshot", "finetune": {"epochs": 1}}, _ctx())
    with pytest.raises(UserError, match=r"field 'layer_sparsity': 'fc9' matches no layer"):
        prune_magnitude_(model, PruneMagnitudeConfig(finetune=NO_TRAINING, layer_sparsity={"fc9": 0.5}), _ctx())
    with pytest.raises(UserError, match="sparsity"):
        PruneMagnitudeConfig.from_dict({"sparsity": 1.5})
    with pytest.raises(UserError, match=r"prune.magnitude: finetune: unknown field 'lrr'"):
        PruneMagnitudeConfig.from_dict({"finetune": {"lrr": 0.1}}, where="prune.magnitude")
    with pytest.raises(UserError, match=r"field 'rounds' \(8\) must be <= finetune.epochs \(4\)"):
        PruneMagnitudeConfig.from_dict({"schedule": "iterative"})
    with pytest.raises(UserError, match="layer_types"):
        PruneMagnitudeConfig.from_dict({"layer_types": ["lstm"]})


def test_nested_finetune_merges_over_the_steps_defaults():
    config = PruneMagnitudeConfig.from_dict({"finetune": {"epochs": 1}})
    assert (config.finetune.epochs, config.finetune.lr, config.finetune.weight_decay) == (1, 0.01, 1e-4)
