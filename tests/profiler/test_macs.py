"""MACs of single layers against closed-form formulas computed here, by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchslim.profiler import profile_model


def _conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    "groups,dilation,stride,padding,bias",
    [
        (1, 1, 1, 0, False),
        (1, 1, 1, 1, True),
        (2, 1, 2, 1, True),
        (4, 2, 1, 2, False),
        (8, 1, 3, 0, True),  # depthwise
        (1, 3, 2, 3, False),
    ],
)
def test_conv_macs_match_closed_form(dims, groups, dilation, stride, padding, bias):
    n, c_in, c_out, k, size = 2, 8, 16, 3, 11
    conv_cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    conv = conv_cls(c_in, c_out, k, stride, padding, dilation, groups, bias)
    stats = profile_model(conv, torch.randn(n, c_in, *[size] * dims))

    out_sizes = [_conv_out(size, k, stride, padding, dilation)] * dims
    outputs = n * c_out * math.prod(out_sizes)
    assert stats.macs == outputs * (c_in // groups) * k**dims
    assert stats.flops == 2 * stats.macs
    assert stats.other_flops == ({"bias": outputs} if bias else {})
    assert stats.layers[0].output_shape == (n, c_out, *out_sizes)


@pytest.mark.parametrize("groups,stride,padding,output_padding", [(1, 1, 0, 0), (2, 2, 1, 1), (4, 3, 2, 0)])
def test_conv_transpose_macs_match_closed_form(groups, stride, padding, output_padding):
    n, c_in, c_out, k, size = 2, 8, 12, 3, 7
    conv = nn.ConvTranspose2d(c_in, c_out, k, stride, padding, output_padding, groups, bias=False)
    stats = profile_model(conv, torch.randn(n, c_in, size, size))
    # every input pixel scatters a (c_out / groups) x k x k kernel slice per input channel
    assert stats.macs == n * c_in * size * size * (c_out // groups) * k * k


def test_linear_macs_and_bias():
    layer = nn.Linear(20, 30)
    stats = profile_model(layer, torch.randn(4, 20))
    assert stats.macs == 4 * 20 * 30
    assert stats.other_flops == {"bias": 4 * 30}


def test_linear_on_3d_input():
    layer = nn.Linear(16, 8, bias=False)
    stats = profile_model(layer, torch.randn(2, 5, 16))
    assert stats.macs == 2 * 5 * 16 * 8


class _Matmuls(nn.Module):
    def forward(self, a, b, c, d):
        x = torch.matmul(a, b)  # [3, 4, 5] @ [3, 5, 6]
        y = torch.bmm(x, c)  # [3, 4, 6] @ [3, 6, 2]
        z = d @ d.t()  # [7, 9] @ [9, 7]
        return y, z


def test_matmul_bmm_mm_macs():
    inputs = (torch.randn(3, 4, 5), torch.randn(3, 5, 6), torch.randn(3, 6, 2), torch.randn(7, 9))
    stats = profile_model(_Matmuls(), inputs)
    assert stats.macs == 3 * 4 * 5 * 6 + 3 * 4 * 6 * 2 + 7 * 9 * 7
    assert stats.uncounted_ops == {}


class _Baddbmm(nn.Module):
    def forward(self, bias, a, b):
        return torch.baddbmm(bias, a, b)


def test_baddbmm_macs():
    stats = profile_model(_Baddbmm(), (torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(2, 5, 4)))
    assert stats.macs == 2 * 3 * 5 * 4
    assert stats.other_flops == {"bias": 2 * 3 * 4}


class _Attention(nn.Module):
    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)


@pytest.mark.parametrize("causal,masked", [(False, False), (True, False), (False, True)])
def test_sdpa_macs(causal, masked):
    b, h, lq, lk, e, ev = 2, 4, 7, 9, 16, 8
    q, k, v = torch.randn(b, h, lq, e), torch.randn(b, h, lk, e), torch.randn(b, h, lk, ev)
    mask = torch.randn(lq, lk) if masked else None
    stats = profile_model(_Attention(causal), (q, k, v, mask))
    # q @ k^T: b*h*lq*lk*e, then attn @ v: b*h*lq*lk*ev (causal masking not discounted)
    assert stats.macs == b * h * lq * lk * (e + ev)
    scores = b * h * lq * lk
    assert stats.other_flops["softmax"] == 5 * scores
    if not causal:  # (a causal call may take the math path, which also builds the mask)
        # scaling q and k, adding the mask
        assert stats.other_flops["elementwise"] == q.numel() + k.numel() + (scores if masked else 0)
    assert stats.uncounted_ops == {}


def test_multihead_attention_is_counted_not_fused():
    d, heads, length, batch = 32, 4, 6, 2
    mha = nn.MultiheadAttention(d, heads, batch_first=True)
    x = torch.randn(batch, length, d)
    stats = profile_model(mha, (x, x, x))
    tokens = batch * length
    projections = tokens * d * 3 * d + tokens * d * d  # in_proj (q, k, v) + out_proj
    attention = batch * heads * length * length * (d // heads) * 2
    assert stats.macs == projections + attention
    assert stats.uncounted_ops == {}
    assert torch.backends.mha.get_fastpath_enabled()  # restored


def test_fake_quantize_counts_four_flops_per_element():
    import torch

    from torchslim.profiler import profile_model

    class FakeQuant(torch.nn.Module):
        def forward(self, x):
            return torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127)

    stats = profile_model(FakeQuant(), torch.randn(2, 3, 4))
    assert stats.other_flops == {"quantize": 4 * 24}
    assert stats.uncounted_ops == {}
