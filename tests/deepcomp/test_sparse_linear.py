"""SparseLinear: CSR forward equals the dense layer; training/export/profiling stay dense; save/load."""

from __future__ import annotations

import torch
from torch import nn

from tests.conftest import small_model
from torchslim.pipeline import compress
from torchslim.deepcomp.sparse_linear import SparseLinear
from torchslim.profiler.snapshot import MeasureConfig


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


def test_step_swaps_profiles_saves_and_exports(tmp_path):
    from torchslim.profiler import export_onnx
    from torchslim.serialize import load, save

    model, x = small_model("lenet300")
    steps = [("deepcomp.prune", {"criterion": "uniform", "sparsity": 0.9, "schedule": "oneshot", "epochs": 0}),
             ("deepcomp.sparse_linear", {"decide": "always"})]
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
