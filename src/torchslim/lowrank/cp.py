"""CP decomposition of Conv2d (Lebedev, Ganin, Rakhuba, Oseledets & Lempitsky, ICLR 2015).

W (O, I, kh, kw) ~ sum_r lambda_r a_r (x) b_r (x) v_r (x) h_r, rank R, computed by TensorLy's
``parafac`` (ALS from an SVD init, seeded) in float64 on its pytorch backend (one thread). The replacement
(Lebedev et al., Eq. 3-4) is four standard convs:

    Conv2d(I, R, 1, no bias)                                weight b_r
    Conv2d(R, R, (kh, 1), groups=R, stride/pad/dil on H)    weight v_r   (depthwise)
    Conv2d(R, R, (1, kw), groups=R, stride/pad/dil on W)    weight h_r   (depthwise)
    Conv2d(R, O, 1, bias)                                   weight lambda_r a_r

Splitting padding, stride and dilation between the two depthwise convs is exact: zero (or
reflect/replicate/circular) padding along W commutes with a convolution along H. Grouped
and depthwise convs are skipped. CP has no cheap error bound, so a model-scope MACs target
is met per layer instead of by greedy allocation. Rank from energy/VBMF: the larger of the
two channel-unfolding ranks (a heuristic; CP rank is not defined by a matrix spectrum).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.lowrank.config import FactorizeConfig
from torchslim.lowrank.factorize import factorize_model_
from torchslim.lowrank.layers import Layer, Method, conv_padding, conv_skip, factory_kwargs, single_thread
from torchslim.lowrank.tucker import channel_unfoldings


@dataclass(frozen=True)
class CPConfig(FactorizeConfig):
    """``n_iter_max``: ALS iterations of ``tensorly.decomposition.parafac``."""

    n_iter_max: int = 100


def cp_factors(weight: torch.Tensor, rank: int, seed: int = 0, n_iter_max: int = 100
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(lambda (R,), [A (O, R), B (I, R), V (kh, R), H (kw, R)]), float64."""
    import tensorly as tl  # lazy: importing torchslim must not import TensorLy
    from tensorly.decomposition import parafac

    with tl.backend_context("pytorch"), single_thread(), warnings.catch_warnings():
        # An SVD init with more components than a mode's size pads with seeded random columns.
        warnings.filterwarnings("ignore", message=".*n_eigenvecs.*")
        cp = parafac(weight.detach().double().cpu(), rank=rank, init="svd", n_iter_max=n_iter_max,
                     random_state=seed, tol=1e-8)
    return cp.weights, list(cp.factors)


@torch.no_grad()
def cp_conv(layer: nn.Conv2d, rank: int, seed: int = 0, n_iter_max: int = 100) -> nn.Sequential:
    """Conv2d(I, O, (kh, kw)) -> 1x1 (I->R), depthwise kh x 1, depthwise 1 x kw, 1x1 (R->O)."""
    lam, (a, b, v, h) = cp_factors(layer.weight, rank, seed, n_iter_max)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel_size, layer.stride, conv_padding(layer), layer.dilation
    mode = layer.padding_mode
    first = nn.Conv2d(layer.in_channels, rank, 1, bias=False, **factory_kwargs(layer))
    vertical = nn.Conv2d(rank, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1), groups=rank,
                         bias=False, padding_mode=mode, **factory_kwargs(layer))
    horizontal = nn.Conv2d(rank, rank, (1, kw), stride=(1, sw), padding=(0, pw), dilation=(1, dw), groups=rank,
                           bias=False, padding_mode=mode, **factory_kwargs(layer))
    last = nn.Conv2d(rank, layer.out_channels, 1, bias=layer.bias is not None, **factory_kwargs(layer))
    first.weight.copy_(b.T[:, :, None, None])
    vertical.weight.copy_(v.T[:, None, :, None])
    horizontal.weight.copy_(h.T[:, None, None, :])
    last.weight.copy_((a * lam[None, :])[:, :, None, None])
    if layer.bias is not None:
        last.bias.copy_(layer.bias)
    return nn.Sequential(first, vertical, horizontal, last)


def cp_reconstruct(layer: nn.Conv2d, rank: int, seed: int = 0, n_iter_max: int = 100) -> torch.Tensor:
    """The full (O, I, kh, kw) kernel the rank-R CP factors represent (float64)."""
    lam, (a, b, v, h) = cp_factors(layer.weight, rank, seed, n_iter_max)
    return torch.einsum("r,or,ir,hr,wr->oihw", lam, a, b, v, h)


def cp_macs(layer: Layer, rank: int) -> int:
    m = layer.module
    (kh, kw), in_w = m.kernel_size, layer.in_shape[3]
    in_hw, (out_h, out_w) = math.prod(layer.in_shape[2:]), layer.out_shape[2:]
    return rank * (m.in_channels * in_hw + kh * out_h * in_w + kw * out_h * out_w + m.out_channels * out_h * out_w)


def cp_method(n_iter_max: int = 100) -> Method:
    return Method(
        name="cp", types=(nn.Conv2d,), skip=conv_skip, unfold=channel_unfoldings,
        rank_from=lambda layer, r: max(r), macs=cp_macs, error=lambda spectra, r: None,
        build=lambda module, r, seed: cp_conv(module, r, seed, n_iter_max),
    )


@register_technique("lowrank.cp", CPConfig)
def cp_(model: nn.Module, config: CPConfig, ctx: Context) -> HandlerResult:
    """CP (TensorLy parafac, Lebedev et al. 2015): 1x1 -> depthwise kx1 -> depthwise 1xk -> 1x1."""
    return factorize_model_(model, config, ctx, cp_method(config.n_iter_max))
