"""FitNets (Romero et al. 2015): regressor shapes, the hint loss by hand, and stage 1
training only the student up to the guided layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.distill import hint_loss, make_regressor, train_hints_
from torchslim.errors import UserError


def test_regressor_shapes_follow_the_paper():
    conv = make_regressor(torch.zeros(2, 3, 12, 10), torch.zeros(2, 8, 8, 8))
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (5, 3) and conv.padding == (0, 0)
    assert conv(torch.zeros(2, 3, 12, 10)).shape == (2, 8, 8, 8)
    lin = make_regressor(torch.zeros(2, 7), torch.zeros(2, 4))
    assert isinstance(lin, nn.Linear) and (lin.in_features, lin.out_features) == (7, 4)
    mixed = make_regressor(torch.zeros(2, 2, 3, 3), torch.zeros(2, 5))
    assert mixed(torch.zeros(2, 2, 3, 3)).shape == (2, 5)
    with pytest.raises(UserError, match="smaller than the hint"):
        make_regressor(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 6, 6))


@torch.no_grad()
def test_hint_loss_with_a_regressor_by_hand():
    # 1x1 conv regressor: 1 guided channel -> 2 hint channels, weights (2, -1), biases (0, 1)
    reg = nn.Conv2d(1, 2, kernel_size=1)
    with torch.no_grad():
        reg.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        reg.bias.copy_(torch.tensor([0.0, 1.0]))
    guided = torch.tensor([[[[1.0, 2.0]]]])  # (1, 1, 1, 2)
    hint = torch.tensor([[[[2.0, 3.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    # r(v) = [[2, 4]], [[0, -1]]; differences 0, 1, 0, -1; squares sum 2 over 4 elements
    assert hint_loss(reg(guided), hint).item() == pytest.approx(0.5 * 2 / 4)
    # batch mean: a second identical example leaves it unchanged
    assert hint_loss(reg(guided.repeat(2, 1, 1, 1)), hint.repeat(2, 1, 1, 1)).item() == pytest.approx(0.25)


def _nets() -> tuple[nn.Module, nn.Module, TensorDataset]:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    student = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    x = torch.randn(64, 6)
    return teacher, student, TensorDataset(x, torch.zeros(64, dtype=torch.long))


def test_stage1_trains_up_to_the_guided_layer_only():
    teacher, student, data = _nets()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    before = {k: v.clone() for k, v in student.state_dict().items()}
    teacher.train()
    history, details = train_hints_(student, teacher, data, hint_layer="1", guided_layer="1", epochs=4,
                                    lr=0.05, batch_size=16)
    after = student.state_dict()
    assert not torch.equal(before["0.weight"], after["0.weight"])  # up to the guided layer: trained
    assert torch.equal(before["2.weight"], after["2.weight"])  # after it: untouched (no weight decay)
    assert all(p.requires_grad for p in student.parameters())  # unfrozen again
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert teacher.training  # the teacher's mode is restored
    assert history.train_loss[-1] < history.train_loss[0]
    assert details["regressor"] == "Linear" and details["stage1_trained_params"] == 6 * 4 + 4
