"""Truncated SVD of Linear layers (two Linears) and of Conv2d's (O, I*kh*kw) unfolding.

Linear, W (out, in) = U S V^T (``torch.linalg.svd``), rank r (Denton et al. 2014; Xue et al.
2013):  Linear(in, r, no bias) with weight S_r^1/2 V_r^T, then Linear(r, out, bias) with
weight U_r S_r^1/2. By Eckart-Young the weight error is ||W - W_r||_F^2 = sum_{i>r} s_i^2.

Conv2d, the same factorization of the (O, I*kh*kw) unfolding (Zhang et al. 2016, "channel"
decomposition; the matrix on which Alvarez & Salzmann 2017 put their nuclear norm, see
:mod:`torchslim.lowrank.regularize`): Conv2d(I, r, k, stride, padding, dilation, no bias)
then Conv2d(r, O, 1, bias). MACs per output pixel r (I kh kw + O) instead of O I kh kw.

The lead's sketch had SVD for Linear only; convs are included (``layer_types``) because
this is the truncation that matches compression-aware training's unfolding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.lowrank._common import (
    FactorizeConfig,
    Layer,
    Method,
    conv_skip,
    discarded_fraction,
    factorize_model_,
    factory_kwargs,
)


@dataclass(frozen=True)
class SVDConfig(FactorizeConfig):
    """``layer_types``: any of "linear", "conv" (Conv2d via its (O, I*kh*kw) unfolding)."""

    layer_types: tuple[str, ...] = ("linear", "conv")

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [t for t in self.layer_types if t not in ("linear", "conv")]
        if bad or not self.layer_types:
            raise ValueError(f"field 'layer_types' must list 'linear' and/or 'conv', got {list(self.layer_types)}")


def _split(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, n) matrix -> A (out, r), B (r, n) with A @ B the best rank-r approximation."""
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


@torch.no_grad()
def svd_linear(layer: nn.Linear, rank: int) -> nn.Sequential:
    """Linear(in, out) -> Sequential(Linear(in, r, bias=False), Linear(r, out))."""
    a, b = _split(layer.weight, rank)
    first = nn.Linear(layer.in_features, rank, bias=False, **factory_kwargs(layer))
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None, **factory_kwargs(layer))
    first.weight.copy_(b)
    second.weight.copy_(a)
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


@torch.no_grad()
def svd_conv(layer: nn.Conv2d, rank: int) -> nn.Sequential:
    """Conv2d(I, O, k) -> Sequential(Conv2d(I, r, k, same stride/padding/dilation), Conv2d(r, O, 1))."""
    o, i, kh, kw = layer.weight.shape
    a, b = _split(layer.weight.reshape(o, -1), rank)
    first = nn.Conv2d(i, rank, (kh, kw), stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                      bias=False, padding_mode=layer.padding_mode, **factory_kwargs(layer))
    second = nn.Conv2d(rank, o, 1, bias=layer.bias is not None, **factory_kwargs(layer))
    first.weight.copy_(b.reshape(rank, i, kh, kw))
    second.weight.copy_(a.reshape(o, rank, 1, 1))
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def _macs(layer: Layer, rank: int) -> int:
    m = layer.module
    if isinstance(m, nn.Linear):
        return layer.rows * rank * (m.in_features + m.out_features)
    out_hw = math.prod(layer.out_shape[2:])
    return rank * (m.in_channels * math.prod(m.kernel_size) + m.out_channels) * out_hw


def _unfold(layer: Layer) -> list[torch.Tensor]:
    w = layer.module.weight
    return [w.reshape(w.shape[0], -1)]


def _build(module: nn.Module, rank: int, seed: int) -> nn.Module:
    return svd_linear(module, rank) if isinstance(module, nn.Linear) else svd_conv(module, rank)


def _skip(module: nn.Module) -> str | None:
    return None if isinstance(module, nn.Linear) else conv_skip(module)


def svd_method(layer_types: tuple[str, ...] = ("linear", "conv")) -> Method:
    types = tuple(t for key, t in (("linear", nn.Linear), ("conv", nn.Conv2d)) if key in layer_types)
    return Method(
        name="svd", types=types, skip=_skip, unfold=_unfold,
        rank_from=lambda layer, r: r[0], macs=_macs,
        error=lambda spectra, r: discarded_fraction(spectra[0], r), build=_build,
    )


@register_technique("lowrank.svd", SVDConfig)
def svd_(model: nn.Module, config: SVDConfig, ctx: Context) -> HandlerResult:
    """Truncated SVD: Linear -> two Linears, Conv2d -> kxk conv (r filters) + 1x1 conv."""
    return factorize_model_(model, config, ctx, svd_method(config.layer_types))
