"""profile_model's contract: eval mode restored, user errors in one line, inputs accepted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.profiler import profile_model


def test_eval_mode_for_measurement_and_flags_restored():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.BatchNorm1d(3))
    model.train()
    model[1].eval()  # mixed flags must come back exactly
    before = model[2].running_mean.clone()
    stats = profile_model(model, torch.randn(4, 3))
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert torch.equal(model[2].running_mean, before)  # eval: running stats untouched
    assert stats.other_flops["norm"] == 2 * 12  # eval batch norm: scale + shift


def test_no_grad_and_no_arithmetic_on_parameters():
    model = nn.Linear(3, 2)
    weight = model.weight.detach().clone()
    profile_model(model, torch.randn(1, 3))
    assert model.weight.grad is None and torch.equal(model.weight, weight)


def test_wrong_input_shape_is_one_line_user_error_naming_the_shape():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(UserError) as info:
        profile_model(model, torch.randn(2, 3, 9, 9))
    message = str(info.value)
    assert "2x3x9x9" in message and "Sequential" in message and "\n" not in message


@pytest.mark.parametrize("bad", [None, 3, "x", (1, 2), {}])
def test_example_inputs_must_contain_a_tensor(bad):
    with pytest.raises(UserError, match="example_inputs"):
        profile_model(nn.Linear(2, 2), bad)


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(5, 4)

    def forward(self, x, y, scale: float):
        return self.a(x) * scale + self.b(y)


def test_tuple_inputs_with_a_non_tensor():
    stats = profile_model(_TwoInputs(), (torch.randn(2, 3), torch.randn(2, 5), 0.5))
    assert stats.macs == 2 * 3 * 4 + 2 * 5 * 4
    assert stats.input_shapes == [(2, 3), (2, 5)]
    assert stats.execution == "fake"


def test_transformer_encoder_layer_counts_through_the_standard_path():
    d, ff, length = 16, 32, 5
    layer = nn.TransformerEncoderLayer(d, 2, ff, dropout=0.0, batch_first=True)
    stats = profile_model(layer, torch.randn(1, length, d))
    attention = 4 * length * d * d + 2 * length * length * d
    assert stats.macs == attention + 2 * length * d * ff
    assert stats.uncounted_ops == {}
