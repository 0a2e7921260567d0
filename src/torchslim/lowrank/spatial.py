"""Spatially separable filters: kh x 1 then 1 x kw with rank r (Jaderberg, Vedaldi &
Zisserman, BMVC 2014, "Speeding up Convolutional Neural Networks with Low Rank Expansions",
scheme 2; the same n x 1 / 1 x n form as DecomposeMe, Alvarez & Petersson 2016, and ERFNet).

Their closed-form "filter reconstruction" optimum: reshape W (O, C, kh, kw) to the matrix
M[(c, i), (o, j)] = W[o, c, i, j] of shape (C kh, O kw); the truncated SVD M ~ U_r S_r V_r^T
(``torch.linalg.svd``) gives r vertical filters v_k[c, i] = U[(c, i), k] s_k^1/2 and, per
output channel, horizontal filters h_o[k, j] = s_k^1/2 V[(o, j), k]:

    Conv2d(C, r, (kh, 1), stride/pad/dil on H, no bias) -> Conv2d(r, O, (1, kw), on W, bias)

MACs per sample: r C kh H_out W_in + O r kw H_out W_out. Weight error: sum_{k>r} s_k^2
(Eckart-Young on M). Full rank r = min(C kh, O kw) is exact. 1x1 convs are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.lowrank.config import FactorizeConfig
from torchslim.lowrank.factorize import factorize_model_
from torchslim.lowrank.layers import Layer, Method, conv_padding, conv_skip, factory_kwargs
from torchslim.lowrank.ranks import discarded_fraction


@dataclass(frozen=True)
class SpatialConfig(FactorizeConfig):
    """Fields as for every factorization (see ``FactorizeConfig``)."""


def spatial_matrix(weight: torch.Tensor) -> torch.Tensor:
    """(O, C, kh, kw) -> M (C kh, O kw) with M[(c, i), (o, j)] = W[o, c, i, j]."""
    o, c, kh, kw = weight.shape
    return weight.permute(1, 2, 0, 3).reshape(c * kh, o * kw)


@torch.no_grad()
def spatial_conv(layer: nn.Conv2d, rank: int) -> nn.Sequential:
    """Conv2d(C, O, (kh, kw)) -> Sequential(Conv2d(C, r, (kh, 1)), Conv2d(r, O, (1, kw)))."""
    o, c, kh, kw = layer.weight.shape
    u, s, vh = torch.linalg.svd(spatial_matrix(layer.weight.detach().double()), full_matrices=False)
    root = s[:rank].sqrt()
    vert = (u[:, :rank] * root).reshape(c, kh, rank).permute(2, 0, 1)  # (r, C, kh)
    horiz = (root[:, None] * vh[:rank]).reshape(rank, o, kw).permute(1, 0, 2)  # (O, r, kw)
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, conv_padding(layer), layer.dilation
    first = nn.Conv2d(c, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1), bias=False,
                      padding_mode=layer.padding_mode, **factory_kwargs(layer))
    second = nn.Conv2d(rank, o, (1, kw), stride=(1, sw), padding=(0, pw), dilation=(1, dw),
                       bias=layer.bias is not None, padding_mode=layer.padding_mode, **factory_kwargs(layer))
    first.weight.copy_(vert[..., None])
    second.weight.copy_(horiz[:, :, None, :])
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def spatial_macs(layer: Layer, rank: int) -> int:
    m = layer.module
    (kh, kw), in_w, (out_h, out_w) = m.kernel_size, layer.in_shape[3], layer.out_shape[2:]
    return rank * m.in_channels * kh * out_h * in_w + m.out_channels * rank * kw * out_h * out_w


def _skip(module: nn.Module) -> str | None:
    if module.kernel_size == (1, 1):
        return "1x1 conv has no spatial extent to separate"
    return conv_skip(module)


def spatial_method() -> Method:
    return Method(
        name="spatial", types=(nn.Conv2d,), skip=_skip, unfold=lambda layer: [spatial_matrix(layer.module.weight)],
        rank_from=lambda layer, r: r[0], macs=spatial_macs,
        error=lambda spectra, r: discarded_fraction(spectra[0], r),
        build=lambda module, r, seed: spatial_conv(module, r),
    )


@register_technique("lowrank.spatial", SpatialConfig)
def spatial_(model: nn.Module, config: SpatialConfig, ctx: Context) -> HandlerResult:
    """Spatially separable (Jaderberg et al. 2014, scheme 2): Conv2d -> kx1 (rank r) -> 1xk."""
    return factorize_model_(model, config, ctx, spatial_method())
