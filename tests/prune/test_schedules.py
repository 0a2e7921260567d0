"""Group lasso, iterative schedule and sensitivity analysis on a tiny task."""

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.core import Context
from torchslim.data.splits import DataSplits
from torchslim.graph import build_dependency_graph
from torchslim.prune import (
    GroupLassoConfig,
    IterativePruneConfig,
    SensitivityConfig,
    group_lasso_,
    prune_iterative_,
    ratios_for_drop,
    sensitivity_,
)
from torchslim.prune.lasso import channel_norms_sq
from torchslim.prune.sensitivity import SensitivityRow
from torchslim.train import evaluate

sys.path.insert(0, str(Path(__file__).parent))
from prune_oracle import cbr  # noqa: E402


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(cbr(1, 16), nn.MaxPool2d(2), cbr(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 3)).eval()


def _data() -> DataSplits:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (240,), generator=gen)
    x = torch.randn(240, 1, 8, 8, generator=gen) * 0.3
    x[:, 0, :4, :4] += (y == 0).float()[:, None, None]  # class = which quadrant is bright
    x[:, 0, 4:, 4:] += (y == 1).float()[:, None, None]
    x[:, 0, :4, 4:] += (y == 2).float()[:, None, None]
    ds = TensorDataset(x, y)
    return DataSplits(name="quadrants", train=ds, val=ds, test=ds, num_classes=3, input_shape=(1, 8, 8),
                      class_names=("a", "b", "c"), mean=(0.0,), std=(1.0,), pixel_scale=1.0)


def _ctx(tmp_path=None) -> Context:
    data = _data()
    return Context((torch.randn(1, 1, 8, 8),), data=data, eval_fn=lambda m: evaluate(m, data.test), progress=False,
                   out_dir=tmp_path)


def test_channel_norms_match_naive_sum():
    model = _net()
    graph = build_dependency_graph(model, (torch.randn(1, 1, 8, 8),))
    group = next(g for g in graph.groups if "0.0" in g.producers())
    norms = channel_norms_sq(model, [group])[group.id]
    # channel c: conv row c, BN gamma_c, beta_c, next conv's input column c
    naive = (model[0][0].weight.flatten(1).pow(2).sum(1) + model[0][1].weight.pow(2) + model[0][1].bias.pow(2)
             + model[2][0].weight.transpose(0, 1).flatten(1).pow(2).sum(1))
    torch.testing.assert_close(norms, naive)


def test_group_lasso_removes_channels_and_keeps_the_model_working():
    model, ctx = _net(), _ctx()
    result = group_lasso_(model, GroupLassoConfig(strength=1.5, epochs=4, lr=0.05, threshold=0.05), ctx)
    assert sum(result.details["removed_channels"].values()) > 0
    assert model[0][0].out_channels < 16 or model[2][0].out_channels < 16
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_iterative_schedule_meets_the_target():
    model, ctx = _net(), _ctx()
    result = prune_iterative_(model, IterativePruneConfig(target_macs=2.0, steps=2, epochs_per_step=1), ctx)
    assert len(result.details["rounds"]) == 2
    assert result.details["macs_reduction"] >= 2.0
    assert result.details["rounds"][0]["macs_reduction"] < 2.0  # the first round cuts only part of the way


def test_sensitivity_table_plot_and_ratios(tmp_path):
    model, ctx = _net(), _ctx(tmp_path)
    result = sensitivity_(model, SensitivityConfig(ratios=(0.5, 0.75)), ctx)
    table = result.details["table"]
    assert len(table) == 2 * 2  # 2 groups x 2 ratios
    baseline = ctx.eval_fn(model)
    for row in table:
        assert np.isclose(row["drop"], baseline - row["accuracy"])
    assert (tmp_path / "sensitivity.png").stat().st_size > 1000
    assert (tmp_path / "sensitivity.md").read_text().startswith("| group")
    rows = [SensitivityRow("a", 8, 0.25, 0.9, 0.0, 1.1), SensitivityRow("a", 8, 0.5, 0.8, 0.1, 1.3),
            SensitivityRow("b", 8, 0.25, 0.5, 0.4, 1.1)]
    assert ratios_for_drop(rows, 0.05) == {"a": 0.25, "b": 0.0}


def test_proximal_step_soft_thresholds_whole_channels():
    from torchslim.prune import proximal_step

    graph = build_dependency_graph(_net(), (torch.randn(1, 1, 8, 8),))
    for g in graph.groups:  # one group at a time: groups share tensors (rows vs columns)
        model = _net()
        before = channel_norms_sq(model, [g])[g.id].detach().sqrt()
        step = float(before.median())
        proximal_step([g], step, "group_lasso")(type("C", (), {"model": model})())
        expected = (before - step).clamp_min(0)  # ||prox(theta_c)|| = max(||theta_c|| - step, 0)
        torch.testing.assert_close(channel_norms_sq(model, [g])[g.id].sqrt(), expected, atol=1e-5, rtol=1e-5)
        assert int((expected == 0).sum()) >= g.channels // 2
