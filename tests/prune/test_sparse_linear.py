"""prune.sparse_linear: CSR forward equals the dense layer; training/export/profiling stay dense;
the dense-or-CSR choice is measured interleaved, recorded, and pinnable; save/load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.pipeline import compress
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.prune import SparseLinear, sparse_linear_

PRUNE_90 = ("prune.magnitude", {"criterion": "uniform", "sparsity": 0.9, "schedule": "oneshot",
                                "finetune": {"epochs": 0}})


def _sparse(layer: nn.Linear) -> SparseLinear:
    new = SparseLinear(layer.in_features, layer.out_features)
    with torch.no_grad():
        layer.weight[torch.rand_like(layer.weight) < 0.9] = 0.0
    new.load_state_dict(layer.state_dict())
    return new


def test_csr_forward_matches_dense_and_tracks_weight_updates():
    layer = nn.Linear(50, 20)
    new = _sparse(layer)
    x = torch.randn(8, 50)
    with torch.no_grad():
        assert torch.allclose(new(x), layer(x), atol=1e-6)
        first = new.csr_weight()
        new.weight.mul_(2)
        assert new.csr_weight() is not first
        assert torch.allclose(new(x), 2 * (layer(x) - layer.bias) + layer.bias, atol=1e-5)


def test_grad_path_is_dense():
    new = _sparse(nn.Linear(10, 4))
    new(torch.randn(3, 10)).sum().backward()
    assert new.weight.grad is not None


def _pruned_lenet300() -> nn.Module:
    return compress(small_model("lenet300")[0], [PRUNE_90], measure=MeasureConfig(runtimes=()), progress=False).model


def test_pinned_decisions_win_over_density_and_timing():
    model = _pruned_lenet300()  # layers "1", "3", "5", each 10% dense
    ctx = Context((torch.zeros(1, 1, 28, 28),))
    with torch.no_grad():
        model.get_submodule("5").weight.fill_(1.0)  # dense now: above max_density, never measured
    sparse_linear_(model, {"decisions": {"1": False, "5": True}, "max_density": 0.3}, ctx)
    details = ctx.results[-1].details
    assert type(model.get_submodule("1")) is nn.Linear  # pinned dense though 10% dense
    assert isinstance(model.get_submodule("5"), SparseLinear)  # pinned CSR though 100% dense
    assert details["decisions"]["1"] == {"chosen": False, "source": "pinned"}
    assert details["decisions"]["5"] == {"chosen": True, "source": "pinned"}
    measured = details["decisions"]["3"]  # not pinned, 10% dense: timed interleaved
    assert measured["source"] == "measured" and measured["baseline_ms"] > 0 and measured["candidate_ms"] > 0
    assert isinstance(model.get_submodule("3"), SparseLinear) == measured["chosen"]
    # an unreliable timing keeps the conservative choice: faster in every round (core.timing.decide)
    assert measured["chosen"] == ((measured["speedup"] if measured["reliable"] else measured["min_ratio"]) >= 1.1)
    assert details["layers"]["3"]["sparse"] == measured["chosen"]


def test_a_pinned_name_that_is_no_candidate_is_an_error():
    model = _pruned_lenet300()
    with pytest.raises(UserError, match=r"field 'decisions': 'fc1' matches no layer"):
        sparse_linear_(model, {"decisions": {"fc1": True}})


def test_step_swaps_profiles_saves_and_exports(tmp_path):
    from torchslim.profiler import export_onnx
    from torchslim.serialize import load, save

    model, x = small_model("lenet300")
    steps = [PRUNE_90, ("prune.sparse_linear", {"decisions": {"1": True, "3": True, "5": True}})]
    result = compress(model, steps, measure=MeasureConfig(runtimes=()), progress=False)
    swapped = [m for m in result.model.modules() if isinstance(m, SparseLinear)]
    assert len(swapped) == 3
    after = result.report.steps[-1]
    assert after.after.macs == after.before.macs  # the FLOP counter sees the dense op
    assert after.max_abs_error < 1e-5
    save(result.model, tmp_path / "m")
    restored = load(tmp_path / "m")
    assert isinstance(restored.get_submodule("1"), SparseLinear)
    with torch.no_grad():
        assert torch.allclose(restored(x), result.model(x), atol=1e-6)
    export_onnx(result.model, (x,), tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size > 0
