"""Forward-hook feature taps: the recorded tensors are the real intermediates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim.distill import FeatureTap
from torchslim.distill.taps import last_linear_input
from torchslim.errors import UserError


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 3), nn.Tanh()), nn.Linear(3, 2))


def test_tap_records_outputs_and_inputs_without_changing_the_output():
    net, x = _net(), torch.randn(6, 4)
    plain = net(x)
    with FeatureTap(net, ["1", "2.0", "3:input"]) as tap:
        out = net(x)
        torch.testing.assert_close(out, plain, rtol=0, atol=0)
        torch.testing.assert_close(tap["1"], torch.relu(net[0](x)))
        torch.testing.assert_close(tap["2.0"], net[2][0](tap["1"]))
        torch.testing.assert_close(tap["3:input"], net[2](tap["1"]))
        assert tap["1"].requires_grad  # still on the graph for feature losses
    assert not net._forward_hooks and not net[3]._forward_pre_hooks and not net[1]._forward_hooks


def test_last_linear_input_and_errors():
    net = _net()
    assert last_linear_input(net) == "3:input"
    with pytest.raises(UserError, match="layer 'nope': no such module"):
        FeatureTap(net, ["nope"])
    with FeatureTap(net, ["1"]) as tap, pytest.raises(UserError, match="did not run"):
        tap["1"]
    with pytest.raises(UserError, match="no nn.Linear"):
        last_linear_input(nn.Sequential(nn.ReLU()))
