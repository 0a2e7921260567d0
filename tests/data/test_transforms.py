from __future__ import annotations

import pytest
import torch

from torchslim.data.transforms import resize, set_channels
from torchslim.errors import UserError


def test_bilinear_upsampling_of_a_linear_ramp_is_exact():
    # f(r, c) = 2r + c; bilinear reproduces linear functions, and with align_corners=False
    # output index i samples source coordinate (i + 0.5) / 2 - 0.5, clamped to the edge.
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 2, 2)
    src = ((torch.arange(4) + 0.5) / 2 - 0.5).clamp(0, 1)
    expected = 2 * src[:, None] + src[None, :]
    torch.testing.assert_close(resize(x, 4)[0, 0], expected)


def test_pad_if_larger_pads_evenly_and_falls_back_to_bilinear():
    x = torch.ones(1, 1, 28, 28)
    padded = resize(x, 32, pad_if_larger=True)
    assert padded.sum() == 28 * 28 and torch.equal(padded[0, 0, 2:30, 2:30], x[0, 0])
    odd = resize(x, 31, pad_if_larger=True)  # odd growth cannot be centred: interpolate
    torch.testing.assert_close(odd, torch.ones(1, 1, 31, 31))
    assert resize(x, None) is x


def test_set_channels():
    x = torch.arange(8.0).view(2, 1, 2, 2)
    assert torch.equal(set_channels(x, 3, source="s"), x.repeat(1, 3, 1, 1))
    with pytest.raises(UserError, match="s: cannot convert 3-channel images to channels=1"):
        set_channels(torch.zeros(1, 3, 2, 2), 1, source="s")
    with pytest.raises(UserError, match="channels must be a positive int"):
        set_channels(x, 0, source="s")
