"""deepcomp.prune: exact counts, Han's std rule, global ranking, AGP, masks held at +0.0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import small_model
from torchslim.pipeline import compress
from torchslim.core import Context
from torchslim.deepcomp.prune import PruneConfig, agp_fraction, global_counts, magnitude_mask, prune_
from torchslim.errors import UserError
from torchslim.profiler.snapshot import MeasureConfig

NO_LATENCY = MeasureConfig(runtimes=())


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


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
    config = PruneConfig(criterion=criterion, quality=1.5, sparsity=0.9, schedule="oneshot", epochs=0)
    details = prune_(model, config, Context((torch.zeros(1, 1, 28, 28),))).details
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
    config = PruneConfig(criterion="uniform", sparsity=0.8, schedule="agp", rounds=3, epochs=2, lr=0.01)
    seen: list[torch.Tensor] = []
    ctx = Context((torch.zeros(1, 1, 28, 28),), data=tiny_data, progress=False)
    prune_(model, config, ctx)
    for layer in _linears(model):
        assert int((layer.weight == 0).sum()) == round(0.8 * layer.weight.numel())
        seen.append(layer.weight.detach() == 0)
    # A second, milder step keeps every weight pruned by the first one.
    prune_(model, PruneConfig(criterion="uniform", sparsity=0.5, schedule="oneshot", epochs=1), ctx)
    for mask, layer in zip(seen, _linears(model)):
        assert torch.all(layer.weight.detach()[mask] == 0)


def test_iterative_rounds_and_compress_report(tiny_data):
    model, _ = small_model("lenet300")
    step = ("deepcomp.prune", {"criterion": "global", "sparsity": 0.9, "schedule": "iterative", "rounds": 2,
                               "epochs": 2})
    result = compress(model, [step], data=tiny_data, measure=NO_LATENCY, progress=False)
    details = result.report.steps[0].details
    assert details["pruning_rate"] == pytest.approx(10.0, rel=0.01)
    assert len(details["val_accuracy"]) == 2


def test_user_errors():
    model, _ = small_model("lenet300")
    ctx = Context((torch.zeros(1, 1, 28, 28),))
    with pytest.raises(UserError, match="needs data"):
        prune_(model, PruneConfig(epochs=1), ctx)
    with pytest.raises(UserError, match="'fc9' is not a selected layer"):
        prune_(model, PruneConfig(epochs=0, layer_sparsity={"fc9": 0.5}), ctx)
    with pytest.raises(UserError, match="sparsity"):
        PruneConfig.from_dict({"sparsity": 1.5})
