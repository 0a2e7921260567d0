"""Truncated SVD of Linear layers (two Linears) and of a conv's (O, I*prod(k)) unfolding.

Linear, W (out, in) = U S V^T (``torch.linalg.svd``), rank r (Denton et al. 2014; Xue et al.
2013):  Linear(in, r, no bias) with weight S_r^1/2 V_r^T, then Linear(r, out, bias) with
weight U_r S_r^1/2. By Eckart-Young the weight error is ||W - W_r||_F^2 = sum_{i>r} s_i^2.

Conv (1-D, 2-D or 3-D), the same factorization of the (O, I*prod(k)) unfolding (Zhang et al.
2016, "channel" decomposition; the matrix on which Alvarez & Salzmann 2017 put their nuclear
norm, see :mod:`torchslim.lowrank.regularize`): Conv(I, r, k, stride, padding, dilation, no
bias) then Conv(r, O, 1, bias). MACs per output position r (I prod(k) + O) instead of
O I prod(k).

Convs are included (``layer_types``) because this is the truncation that matches
compression-aware training's unfolding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerKind, layer_classes
from torchslim.lowrank.config import FactorizeConfig, check_layer_types
from torchslim.lowrank.factorize import factorize_model_
from torchslim.lowrank.layers import Layer, Method, conv_skip, factory_kwargs
from torchslim.lowrank.ranks import discarded_fraction


@dataclass(frozen=True)
class SVDConfig(FactorizeConfig):
    """``layer_types``: any of "linear", "conv" (Conv1d/2d/3d via the (O, I*prod(k)) unfolding)."""

    layer_types: tuple[LayerKind, ...] = ("linear", "conv")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layer_types(self.layer_types)


CONV_BY_DIMS: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


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
def svd_conv(layer: nn.Conv1d | nn.Conv2d | nn.Conv3d, rank: int) -> nn.Sequential:
    """ConvNd(I, O, k) -> Sequential(ConvNd(I, r, k, same stride/padding/dilation), ConvNd(r, O, 1))."""
    o, i, *kernel = layer.weight.shape
    conv = CONV_BY_DIMS[len(kernel)]  # the standard class, also for a subclass of it
    a, b = _split(layer.weight.reshape(o, -1), rank)
    first = conv(i, rank, tuple(kernel), stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                 bias=False, padding_mode=layer.padding_mode, **factory_kwargs(layer))
    second = conv(rank, o, 1, bias=layer.bias is not None, **factory_kwargs(layer))
    first.weight.copy_(b.reshape(rank, i, *kernel))
    second.weight.copy_(a.reshape(o, rank, *(1 for _ in kernel)))
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def svd_macs(layer: Layer, rank: int) -> int:
    """MACs per sample of the two-layer replacement at ``rank``."""
    m = layer.module
    if isinstance(m, nn.Linear):
        return layer.rows * rank * (m.in_features + m.out_features)
    out_size = math.prod(layer.out_shape[2:])
    return rank * (m.in_channels * math.prod(m.kernel_size) + m.out_channels) * out_size


def _unfold(layer: Layer) -> list[torch.Tensor]:
    w = layer.module.weight
    return [w.reshape(w.shape[0], -1)]


def _build(module: nn.Module, rank: int, seed: int) -> nn.Module:
    return svd_linear(module, rank) if isinstance(module, nn.Linear) else svd_conv(module, rank)


def _skip(module: nn.Module) -> str | None:
    return None if isinstance(module, nn.Linear) else conv_skip(module)


def svd_method(layer_types: tuple[str, ...] = ("linear", "conv")) -> Method:
    return Method(
        name="svd", types=layer_classes(layer_types), skip=_skip, unfold=_unfold,
        rank_from=lambda layer, r: r[0], macs=svd_macs,
        error=lambda spectra, r: discarded_fraction(spectra[0], r), build=_build,
    )


@register_technique("lowrank.svd", SVDConfig)
def svd_(model: nn.Module, config: SVDConfig, ctx: Context) -> HandlerResult:
    """Truncated SVD: Linear -> two Linears, conv -> kxk conv (r filters) + 1x1 conv."""
    return factorize_model_(model, config, ctx, svd_method(config.layer_types))
