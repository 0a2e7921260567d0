"""Fold BatchNorm into the preceding Conv or Linear layer (inference-time, exact).

For a BN in eval mode, y = gamma * (x - mean) / sqrt(var + eps) + beta is a per-channel
affine map, so after a conv/linear with weight W (out channels on dim 0) and bias b:

    s  = gamma / sqrt(var + eps)                 (shape: out_channels)
    W' = W * s[:, None, ...]
    b' = (b - mean) * s + beta

The BN is replaced by ``nn.Identity``. Arithmetic is done in float64 and cast back, so the
folded model matches the unfolded one to float32 rounding (tested: max abs error < 1e-5).
Pairs are found on the module graph of the Context's torch.export capture
(:mod:`torchslim.graph.modules`): the BN's only input is the conv's output, nothing else reads
that output, and each of the two modules runs once (folding into a conv called twice would
change its other call). When torch.export cannot capture the model, only consecutive children
of plain ``nn.Sequential`` containers are folded (their dataflow is the container's order),
and a warning says so: fewer folds, never a wrong one. A Linear is folded only when its output
is (N, C) (BatchNorm1d on (N, L, C) normalises L, not the Linear's features), which needs the
capture's shapes. ConvTranspose (out channels on dim 1) is left alone and named in a warning.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import set_submodule
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerFilter, check_patterns
from torchslim.errors import UserError

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class FoldBNConfig(TechniqueConfig):
    """``exclude``: layer names or ``re:`` patterns (conv or BN) to leave unfolded."""

    keeps_layer_names: ClassVar[bool] = True  # layers keep their names (no containers)

    exclude: tuple[str, ...] = ()


@torch.no_grad()
def fold_into(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` into ``layer`` in place (weight out-channels on dim 0)."""
    weight = layer.weight.double()
    mean = bn.running_mean.double()
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    shift = -mean * scale
    if bn.affine:
        scale = scale * bn.weight.double()
        shift = shift * bn.weight.double() + bn.bias.double()
    bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(mean)
    new_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    new_bias = bias * scale + shift
    layer.weight.copy_(new_weight.to(layer.weight.dtype))
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias.to(layer.weight.dtype))
    else:
        layer.bias.copy_(new_bias.to(layer.bias.dtype))


def sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(child i, child i + 1) of every plain ``nn.Sequential`` (its forward feeds each child the
    previous one's output), skipping modules that appear more than once in the model."""
    appearances = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    pairs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
            continue
        prefix = f"{name}." if name else ""
        kids = list(module.named_children())
        for (a, first), (b, second) in zip(kids, kids[1:]):
            if appearances[id(first)] == 1 and appearances[id(second)] == 1:
                pairs.append((prefix + a, prefix + b))
    return pairs


def _candidate_pairs(model: nn.Module, ctx: Context) -> tuple[list[tuple[str, str, int | None]], list[str]]:
    """(producer, consumer, number of dims of the producer's output or None if unknown), warnings."""
    try:
        graph = ctx.module_graph(model)
    except UserError as exc:
        return [(a, b, None) for a, b in sequential_pairs(model)], [
            f"{exc}; folded BatchNorm only between consecutive children of nn.Sequential containers"]
    pairs = []
    for producer, consumer in graph.exclusive_edges():
        value = graph.calls(producer)[0].aten[-1].meta.get("val")
        pairs.append((producer, consumer, value.dim() if isinstance(value, torch.Tensor) else None))
    return pairs, []


@register_technique("fold.bn", FoldBNConfig)
def fold_bn_(model: nn.Module, config: FoldBNConfig, ctx: Context) -> HandlerResult:
    """Fold every BatchNorm that directly follows a Conv/Linear into it (exact)."""
    check_patterns(model, config.exclude, "exclude")
    pairs, warnings = _candidate_pairs(model, ctx)
    keep = LayerFilter(exclude=config.exclude)
    folded: list[list[str]] = []
    for producer, consumer, ndim in pairs:
        layer, bn = model.get_submodule(producer), model.get_submodule(consumer)
        if not isinstance(bn, _BN):
            continue
        if not isinstance(layer, _FOLDABLE):
            if isinstance(layer, nn.modules.conv._ConvTransposeNd):
                warnings.append(f"{consumer}: BatchNorm after ConvTranspose {producer} not folded")
            continue
        if not (keep(producer, layer) and keep(consumer, bn)):
            continue
        if isinstance(layer, nn.Linear) and ndim != 2:
            # BN normalises dim 1; a Linear's features are the last dim, the same one only for (N, C)
            shape = "of unknown shape (no capture)" if ndim is None else f"{ndim}-D"
            warnings.append(f"{consumer}: BatchNorm after Linear {producer} with a {shape} output, not folded")
            continue
        if bn.running_mean is None or bn.weight is not None and bn.weight.shape[0] != layer.weight.shape[0]:
            warnings.append(f"{consumer}: BatchNorm without running stats or channel mismatch, not folded")
            continue
        fold_into(layer, bn)
        set_submodule(model, consumer, nn.Identity())
        folded.append([producer, consumer])
    remaining = [n for n, m in model.named_modules() if isinstance(m, _BN)]
    if remaining:
        warnings.append(f"{len(remaining)} BatchNorm layer(s) not folded (no Conv/Linear directly before, "
                        "or one of the two called more than once): "
                        + ", ".join(remaining[:5]) + (" ..." if len(remaining) > 5 else ""))
    return HandlerResult(model, warnings, {"folded": folded, "folded_count": len(folded)})
