"""HashedNets: the virtual weight and its gradient (Chen et al. 2015, eq. 5-8), save/load, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import small_model
from torchslim.codec import decode_model, write_model
from torchslim.errors import UserError
from torchslim.pipeline import compress
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.share import HashedConfig, HashedConv2d, HashedLinear
from torchslim.share.hashed import fmix32, hash_index_sign


def test_fmix32_matches_murmur3_reference_values():
    # murmur3 fmix32 reference outputs (computed with 32-bit unsigned arithmetic by hand-checked C).
    def ref(h: int) -> int:
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        return h ^ (h >> 16)

    xs = [0, 1, 2, 12345, 0xDEADBEEF, 0xFFFFFFFF]
    assert fmix32(torch.tensor(xs)).tolist() == [ref(x) for x in xs]


def test_hash_spreads_evenly_and_signs_balance():
    index, sign = hash_index_sign(100000, 100, seed=3)
    counts = torch.bincount(index, minlength=100)
    assert counts.min() > 850 and counts.max() < 1150  # ~1000 +- 5 sigma
    assert abs(sign.mean().item()) < 0.02


def test_virtual_weight_and_gradient():
    layer = HashedLinear(30, 20, buckets=50, seed=1)
    x = torch.randn(4, 30)
    v = (layer.sign * layer.hashed_weight[layer.index]).reshape(20, 30)
    assert torch.equal(layer(x), F.linear(x, v, layer.bias))
    dense = v.detach().clone().requires_grad_()
    F.linear(x, dense, layer.bias.detach()).sum().backward()
    layer(x).sum().backward()
    expected = torch.zeros(50).index_add_(0, layer.index, layer.sign * dense.grad.reshape(-1))  # eq. 8
    assert torch.allclose(layer.hashed_weight.grad, expected, atol=1e-5)


def test_dense_projection_is_exact_without_collisions():
    layer = HashedConv2d(2, 3, (3, 3), buckets=54, seed=0)
    w = layer.virtual_weight().detach().clone()
    layer.hashed_weight.data.zero_()
    layer.project_(w)
    assert torch.allclose(layer.virtual_weight(), w)


def test_hash_step_trains_saves_and_reloads(tiny_data, tmp_path):
    from torchslim.serialize import load, save

    model, x = small_model("lenet5")
    result = compress(model, [("share.hashed", {"target_params": 8, "finetune": {"epochs": 1, "lr": 0.02}})],
                      data=tiny_data, measure=MeasureConfig(runtimes=()), progress=False)
    details = result.report.steps[0].details
    assert 7.5 < details["params_reduction"] <= 8.0 and len(details["val_accuracy"]) == 1
    assert all(v["buckets"] == -(-v["virtual"] // 8) for v in details["layers"].values())  # ceil(weights / 8)
    params = sum(p.numel() for p in result.model.parameters())
    assert result.report.steps[0].after.params == params < 61706 / 6
    save(result.model, tmp_path / "m")
    assert torch.equal(load(tmp_path / "m")(x), result.model.eval()(x))
    path, _, _ = write_model(result.model, tmp_path / "m.tsc")
    assert torch.equal(decode_model(path)(x), result.model(x))


def test_target_params_is_a_reduction_factor():
    with pytest.raises(UserError, match=r"field 'target_params' must be > 1, got 0.125"):
        HashedConfig.from_dict({"target_params": 0.125})  # the old ``ratio`` convention is refused


def test_scratch_without_training_warns():
    from torchslim.core import Context
    from torchslim.share import hashed_

    model, _ = small_model("lenet300")
    ctx = Context((torch.zeros(1, 1, 28, 28),))
    hashed_(model, {"finetune": {"epochs": 0}}, ctx)
    assert any("random initialisation" in w for w in ctx.results[-1].warnings)
    assert all(isinstance(m, HashedLinear) for n, m in model.named_modules() if n in ("1", "3", "5"))
