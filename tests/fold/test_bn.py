import copy

import pytest
import torch
from torch import nn

from torchslim.core import Context
from torchslim.fold.bn import FoldBNConfig, fold_bn_, fold_into


def test_fold_matches_hand_computed_values():
    conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
    conv.weight.data = torch.tensor([[[[2.0]]], [[[-1.0]]]])
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    bn.running_mean.copy_(torch.tensor([1.0, 3.0]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    bn.weight.data = torch.tensor([3.0, 1.0])
    bn.bias.data = torch.tensor([0.5, -2.0])
    fold_into(conv, bn)
    # s = gamma / sqrt(var) = [1.5, 2.0]; W' = W * s; b' = -mean * s + beta
    torch.testing.assert_close(conv.weight.flatten(), torch.tensor([3.0, -2.0]))
    torch.testing.assert_close(conv.bias, torch.tensor([-1.0, -8.0]))


def test_fold_is_exact_on_every_zoo_model(zoo_model):
    name, model, x = zoo_model
    reference = model(x)
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    result = fold_bn_(model, FoldBNConfig(), Context((x,)))
    out = model(x)
    assert (out - reference).abs().max().item() < 1e-5 * max(1.0, reference.abs().max().item())
    remaining = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert result.details["folded_count"] == n_bn - remaining
    if name not in ("densenet",):  # DenseNet-BC is pre-activation: BN follows concat/ReLU, not a conv
        assert remaining == 0, result.warnings


def test_fold_respects_exclude_and_skips_shared_outputs():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3)
            self.bn_a = nn.BatchNorm2d(4)
            self.b = nn.Conv2d(3, 4, 3)
            self.bn_b = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.b(x)
            return self.bn_a(self.a(x)) + self.bn_b(y) + y  # b's output has two users

    model = Net().eval()
    result = fold_bn_(copy.deepcopy(model), FoldBNConfig(exclude=("bn_a",)), Context((torch.randn(1, 3, 8, 8),)))
    assert result.details["folded"] == []
    assert any("2 BatchNorm" in w for w in result.warnings)


def test_linear_bn1d_fold_exact():
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 2)).eval()
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    x = torch.randn(4, 5)
    ref = model(x)
    fold_bn_(model, FoldBNConfig(), Context((x,)))
    assert isinstance(model[1], nn.Identity)
    assert (model(x) - ref).abs().max() < 1e-6


def test_untraceable_model_falls_back_to_sequential_order():
    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))

        def forward(self, x):
            if x.sum() > 0:  # data-dependent branch: fx cannot trace it
                return self.body(x)
            return self.body(-x)

    model = Dynamic().eval()
    model.body[1].running_var.fill_(2.0)
    x = torch.rand(1, 1, 6, 6)
    ref = model(x)
    result = fold_bn_(model, FoldBNConfig(), Context((x,)))
    assert result.details["folded_count"] == 1
    assert any("could not trace" in w for w in result.warnings)
    torch.testing.assert_close(model(x), ref, atol=1e-6, rtol=0)
