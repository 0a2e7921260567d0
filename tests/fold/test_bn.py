import copy

import pytest
import torch
from torch import nn

from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.fold.bn import FoldBNConfig, fold_bn_, fold_into


def _fold(model: nn.Module, x: torch.Tensor, config: FoldBNConfig | None = None):
    """Run fold.bn through its public function; the step's HandlerResult."""
    ctx = Context((x,))
    assert fold_bn_(model, config, ctx) is model
    return ctx.results[-1]


def _randomise_bn(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    return model.eval()


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
    result = _fold(model, x)
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
    result = _fold(copy.deepcopy(model), torch.randn(1, 3, 8, 8), FoldBNConfig(exclude=("bn_a",)))
    assert result.details["folded"] == []
    assert any("2 BatchNorm" in w for w in result.warnings)


def test_linear_bn1d_fold_exact():
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 2)).eval()
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    x = torch.randn(4, 5)
    ref = model(x)
    _fold(model, x)
    assert isinstance(model[1], nn.Identity)
    assert (model(x) - ref).abs().max() < 1e-6


def test_untraceable_model_falls_back_to_sequential_order():
    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))

        def forward(self, x):
            if x.sum() > 0:  # data-dependent branch: torch.export cannot capture it
                return self.body(x)
            return self.body(-x)

    model = Dynamic().eval()
    model.body[1].running_var.fill_(2.0)
    x = torch.rand(1, 1, 6, 6)
    ref = model(x)
    result = _fold(model, x)
    assert result.details["folded_count"] == 1
    assert any("torch.export could not capture Dynamic" in w and "nn.Sequential" in w for w in result.warnings)
    torch.testing.assert_close(model(x), ref, atol=1e-6, rtol=0)


class _ConvTwice(nn.Module):
    """conv runs twice; the BN follows only its second call."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        return self.bn(self.conv(self.conv(x) + x))


class _SharedBN(nn.Module):
    """One BN after two different convs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 2, 1)
        self.b = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        return self.bn(self.a(x)) + self.bn(self.b(x))


@pytest.mark.parametrize("cls", [_ConvTwice, _SharedBN])
def test_module_called_twice_is_never_folded(cls):
    """The fx capture folded these (max error 0.40 and 1.72 before the torch.export module graph):
    a conv called twice got the BN of one call, a BN shared by two convs went into the first."""
    model = _randomise_bn(cls())
    x = torch.rand(1, 2, 5, 5)
    ref = model(x)
    result = _fold(model, x)
    assert result.details["folded"] == []
    assert any("called more than once" in w for w in result.warnings)
    torch.testing.assert_close(model(x), ref, atol=0, rtol=0)


def test_fallback_ignores_sequential_subclass_with_its_own_forward():
    """Without a capture only plain nn.Sequential order is trusted; a subclass may run its
    children in another order (here the BN first), so folding by child order would be wrong."""

    class BNFirst(nn.Sequential):
        def forward(self, x):
            return self[0](self[1](x))

    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = BNFirst(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))

        def forward(self, x):
            return self.body(x) if x.sum() > 0 else self.body(-x)

    model = _randomise_bn(Dynamic())
    x = torch.rand(1, 2, 5, 5)
    ref = model(x)
    result = _fold(model, x)
    assert result.details["folded"] == []
    torch.testing.assert_close(model(x), ref, atol=0, rtol=0)


def test_exclude_pattern_matching_nothing_is_an_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval()
    with pytest.raises(UserError, match="field 'exclude': 'bn' matches no layer"):
        _fold(model, torch.rand(1, 1, 6, 6), FoldBNConfig(exclude=("bn",)))


def test_reads_the_context_capture_of_the_current_model():
    """A Context whose capture was taken before another step rewrote the model must not hand
    fold.bn the old graph (the old Context cached it by id(model) only)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2)).eval()
    _randomise_bn(model)
    x = torch.rand(1, 1, 6, 6)
    ctx = Context((x,))
    assert ctx.module_graph(model).exclusive_edges() == [("0", "1"), ("1", "2")]
    model[1] = nn.Identity()  # a rewrite in place: conv now feeds the BN directly
    ref = model(x)
    fold_bn_(model, None, ctx)
    assert ctx.results[-1].details["folded"] == [["0", "2"]]
    torch.testing.assert_close(model(x), ref, atol=1e-6, rtol=0)


def test_linear_on_a_3d_input_is_not_folded_into_the_next_batchnorm():
    """BatchNorm1d normalises dim 1 of (N, L, C), the Linear's features are dim 2; with L == C the
    channel check passed and the old fold was wrong (max error 1.64)."""
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).eval()
    torch.manual_seed(0)
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 4)
    ref = model(x)
    result = _fold(model, x)
    assert result.details["folded"] == []
    assert "1: BatchNorm after Linear 0 with a 3-D output, not folded" in result.warnings
    torch.testing.assert_close(model(x), ref, atol=0, rtol=0)
