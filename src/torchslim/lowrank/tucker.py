"""Tucker-2 decomposition of Conv2d over its channel modes (Kim et al., ICLR 2016).

W (O, I, kh, kw) ~ G x_0 U_out x_1 U_in with core G (r_out, r_in, kh, kw), U_out (O, r_out),
U_in (I, r_in), computed by TensorLy's ``partial_tucker`` (HOOI from an SVD init) in float64 on
its pytorch backend (one thread, see ``layers.single_thread``). The replacement is three standard convs:

    Conv2d(I, r_in, 1, no bias)                  weight U_in^T
    Conv2d(r_in, r_out, k, stride, padding, dil) weight G        (no bias)
    Conv2d(r_out, O, 1, bias)                    weight U_out

MACs per sample: I r_in H_in W_in + r_in r_out kh kw H_out W_out + r_out O H_out W_out.
Weight error bound used for rank allocation (HOSVD, De Lathauwer et al. 2000, Property 10):
||W - W_hat||^2 <= sum of the squared singular values discarded from the mode-0 and mode-1
unfoldings; HOOI refines from there, so the actual error is no larger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.lowrank.config import FactorizeConfig
from torchslim.lowrank.factorize import factorize_model_
from torchslim.lowrank.layers import Layer, Method, conv_skip, factory_kwargs, single_thread
from torchslim.lowrank.ranks import discarded_fraction


@dataclass(frozen=True)
class TuckerConfig(FactorizeConfig):
    """``n_iter_max``: HOOI iterations of ``tensorly.decomposition.partial_tucker``."""

    n_iter_max: int = 50


def tucker2_factors(weight: torch.Tensor, ranks: tuple[int, int], seed: int = 0, n_iter_max: int = 50
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(core (r_out, r_in, kh, kw), U_out (O, r_out), U_in (I, r_in)), float64."""
    import tensorly as tl  # lazy: importing torchslim must not import TensorLy
    from tensorly.decomposition import partial_tucker

    with tl.backend_context("pytorch"), single_thread():
        (core, (u_out, u_in)), _ = partial_tucker(
            weight.detach().double().cpu(), rank=list(ranks), modes=[0, 1], init="svd",
            n_iter_max=n_iter_max, random_state=seed,
        )
    return core, u_out, u_in


@torch.no_grad()
def tucker2_conv(layer: nn.Conv2d, ranks: tuple[int, int], seed: int = 0, n_iter_max: int = 50) -> nn.Sequential:
    """Conv2d(I, O, k) -> Sequential(1x1 I->r_in, kxk r_in->r_out, 1x1 r_out->O); ranks = (r_out, r_in)."""
    core, u_out, u_in = tucker2_factors(layer.weight, ranks, seed, n_iter_max)
    r_out, r_in = core.shape[:2]
    first = nn.Conv2d(layer.in_channels, r_in, 1, bias=False, **factory_kwargs(layer))
    middle = nn.Conv2d(r_in, r_out, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                       dilation=layer.dilation, bias=False, padding_mode=layer.padding_mode, **factory_kwargs(layer))
    last = nn.Conv2d(r_out, layer.out_channels, 1, bias=layer.bias is not None, **factory_kwargs(layer))
    first.weight.copy_(u_in.T[:, :, None, None])
    middle.weight.copy_(core)
    last.weight.copy_(u_out[:, :, None, None])
    if layer.bias is not None:
        last.bias.copy_(layer.bias)
    return nn.Sequential(first, middle, last)


def tucker_macs(layer: Layer, ranks: tuple[int, int]) -> int:
    m, (r_out, r_in) = layer.module, ranks
    in_hw, out_hw = math.prod(layer.in_shape[2:]), math.prod(layer.out_shape[2:])
    return m.in_channels * r_in * in_hw + r_in * r_out * math.prod(m.kernel_size) * out_hw + r_out * m.out_channels * out_hw


def channel_unfoldings(layer: Layer) -> list[torch.Tensor]:
    """Mode-0 (O, I kh kw) and mode-1 (I, O kh kw) unfoldings of the conv weight."""
    w = layer.module.weight
    return [w.reshape(w.shape[0], -1), w.transpose(0, 1).reshape(w.shape[1], -1)]


def tucker_method(n_iter_max: int = 50) -> Method:
    return Method(
        name="tucker", types=(nn.Conv2d,), skip=conv_skip, unfold=channel_unfoldings,
        rank_from=lambda layer, r: (r[0], r[1]), macs=tucker_macs,
        error=lambda spectra, r: discarded_fraction(spectra[0], r[0]) + discarded_fraction(spectra[1], r[1]),
        build=lambda module, r, seed: tucker2_conv(module, r, seed, n_iter_max),
    )


@register_technique("lowrank.tucker", TuckerConfig)
def tucker_(model: nn.Module, config: TuckerConfig, ctx: Context) -> HandlerResult:
    """Tucker-2 (TensorLy): Conv2d -> 1x1 -> kxk core -> 1x1."""
    return factorize_model_(model, config, ctx, tucker_method(config.n_iter_max))
