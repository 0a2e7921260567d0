"""Per-layer attribution, other-flops categories and uncounted ops on tiny nets, by hand."""

from __future__ import annotations

import json

import torch
from torch import nn

from torchslim.profiler import profile_model


def test_per_layer_attribution_on_sequential():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),  # 0
        nn.BatchNorm2d(8),  # 1
        nn.ReLU(),  # 2
        nn.Flatten(),  # 3
        nn.Linear(8 * 6 * 6, 10),  # 4
    )
    stats = profile_model(model, torch.randn(2, 3, 6, 6))

    assert [layer.name for layer in stats.layers] == ["0", "1", "2", "3", "4"]
    assert [layer.module_type for layer in stats.layers] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "Flatten",
        "Linear",
    ]
    conv, bn, relu, flatten, fc = stats.layers
    activations = 2 * 8 * 6 * 6
    assert conv.macs == activations * 3 * 3 * 3 and conv.params == 8 * 3 * 9
    assert bn.macs == 0 and bn.other_flops == {"norm": 2 * activations} and bn.params == 16
    assert relu.other_flops == {"elementwise": activations}
    assert flatten.macs == 0 and flatten.other_flops == {} and flatten.output_shape == (2, 288)
    assert fc.macs == 2 * 288 * 10 and fc.other_flops == {"bias": 20} and fc.params == 2890
    assert fc.output_shape == (2, 10)
    assert sum(layer.macs for layer in stats.layers) == stats.macs
    assert sum(layer.params for layer in stats.layers) == stats.params


class _Residual(nn.Module):
    """Ops in a non-leaf forward (the add) are charged to that module; a reused ReLU once."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        y = self.act(self.fc1(x))
        return self.act(self.fc2(y) + x)


def test_residual_add_charged_to_parent_and_shared_module_aggregated():
    stats = profile_model(_Residual(), torch.randn(3, 4))
    by_name = {layer.name: layer for layer in stats.layers}
    assert list(by_name) == ["fc1", "act", "fc2", ""]
    assert by_name[""].other_flops == {"elementwise": 12}  # the residual add
    assert by_name["act"].calls == 2 and by_name["act"].other_flops == {"elementwise": 24}
    assert stats.other_flops == {"bias": 24, "elementwise": 36}


class _Everything(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(6)
        self.gn = nn.GroupNorm(2, 4)
        self.max = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(3, stride=1)
        self.adaptive = nn.AdaptiveAvgPool2d((4, 4))

    def forward(self, x):  # x: [1, 4, 6, 6]
        a = self.bn(x)  # norm, eval: 2 * 144
        b = self.ln(x)  # norm with affine: 5 * 144
        c = self.gn(x)  # norm with affine: 5 * 144
        d = torch.sigmoid(a) * b + c  # elementwise: 3 * 144
        e = self.max(d)  # pool: [1,4,3,3] outputs x 4 = 144
        f = self.avg(d)  # pool: [1,4,4,4] outputs x 9 = 576
        g = self.adaptive(d)  # pool, 6 -> 4: windows [0,2) [1,3) [3,5) [4,6): 4 * 8 * 8
        s = torch.softmax(f.flatten(1), dim=1)  # softmax: 5 * 64
        return e.sum() + g.mean() + s  # reduction: 36 + 64; elementwise: 1 (scalar) + 64


def test_other_flops_categories_by_hand():
    stats = profile_model(_Everything(), torch.randn(1, 4, 6, 6))
    assert stats.macs == 0
    assert stats.other_flops == {
        "norm": (2 + 5 + 5) * 144,
        "elementwise": 3 * 144 + 1 + 64,
        "pool": 144 + 576 + 4 * 8 * 8,
        "softmax": 5 * 64,
        "reduction": 36 + 64,
    }
    assert stats.uncounted_ops == {}


class _Cumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 5)

    def forward(self, x):
        return torch.cumsum(self.fc(x), dim=1).cumsum(dim=0)


def test_op_without_formula_is_reported_not_zero():
    stats = profile_model(_Cumsum(), torch.randn(2, 5))
    assert stats.uncounted_ops == {"aten.cumsum": 2}
    assert stats.layers[-1].uncounted_ops == {"aten.cumsum": 2}  # charged to the root
    assert stats.macs == 2 * 5 * 5  # the rest is still counted
    assert "aten.cumsum x2" in stats.table()


def test_to_dict_is_json_and_table_names_layers():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    stats = profile_model(model, torch.randn(1, 3))
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["macs"] == 12 and data["flops"] == 24
    assert data["layers"][0] == {
        "name": "0",
        "module_type": "Linear",
        "params": 16,
        "macs": 12,
        "flops": 24,
        "other_flops": {"bias": 4},
        "uncounted_ops": {},
        "output_shape": [1, 4],
        "calls": 1,
    }
    table = stats.table()
    assert "Linear" in table and "ReLU" in table


def test_squeeze_excitation_counts_by_hand():
    """SE (C=8 -> 2 -> 8) on a 2x8x5x5 input, with each gate the zoo nets use."""
    from torchslim.zoo.blocks import SqueezeExcitation

    n, c, s, hw = 2, 8, 2, 25
    for act, gate in ((nn.SiLU, nn.Sigmoid), (nn.ReLU, nn.Hardsigmoid), (nn.Hardswish, nn.Hardsigmoid)):
        stats = profile_model(SqueezeExcitation(c, s, act, gate), torch.randn(n, c, 5, 5))
        by_name = {layer.name: layer for layer in stats.layers}
        assert by_name["avgpool"].other_flops == {"reduction": n * c * hw}
        assert by_name["fc1"].macs == n * c * s and by_name["fc1"].other_flops == {"bias": n * s}
        assert by_name["act"].other_flops == {"elementwise": n * s}
        assert by_name["fc2"].macs == n * s * c and by_name["fc2"].other_flops == {"bias": n * c}
        assert by_name["gate"].other_flops == {"elementwise": n * c}
        assert by_name[""].other_flops == {"elementwise": n * c * hw}  # x * scale, broadcast over H, W
        assert stats.macs == 2 * n * c * s and stats.uncounted_ops == {}
