"""Uniform k-bit weights (``quant.uniform``), k = 2..8: per-channel symmetric grids.

W_c -> s_c * clamp(round(W_c / s_c), -(2^(k-1) - 1), 2^(k-1) - 1), s_c = max|W_c| / (2^(k-1) - 1)
(the symmetric "restricted range" linear quantizer of Krishnamoorthi 2018, Sec. 2). With a
``finetune`` section the model is fine-tuned through the quantizer with a straight-through
estimator (Bengio et al. 2013), scales recomputed from the latent weights every step.
BatchNorm is folded first so the grid holds the weights that are actually used.
See :mod:`.lowbit` for what "k-bit" means here (storage size, float execution).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.quant.lowbit import LatentWeight, lowbit_details, lowbit_layers, need_data, train_latent_
from torchslim.quant.observers import symmetric_weight_scales
from torchslim.train.config import TrainConfig


def uniform_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric k-bit quantize-dequantize, straight-through gradient."""
    levels = 2 ** (bits - 1) - 1
    scales = symmetric_weight_scales(weight, bits=bits).view(-1, *[1] * (weight.dim() - 1))
    q = torch.clamp(torch.round(weight / scales), -levels, levels) * scales
    return (q - weight).detach() + weight


@dataclass(frozen=True)
class UniformConfig(TechniqueConfig):
    """``bits``: 2..8; ``finetune``: STE fine-tuning (None: post-training only; e.g.
    ``{epochs: 2, lr: 0.005, weight_decay: 0}``); ``keep_ends``: first and last layers stay float."""

    bits: int = 4
    finetune: TrainConfig | None = None
    keep_ends: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 8:
            raise ValueError(f"field 'bits' must be in 2..8, got {self.bits}")


@register_technique("quant.uniform", UniformConfig)
def uniform_(model: nn.Module, config: UniformConfig, ctx: Context) -> HandlerResult:
    """Uniform k-bit per-channel weights (k = 2..8), optionally STE fine-tuned; size at k bits."""
    from torchslim.fold.bn import FoldBNConfig, fold_bn_

    if config.finetune is not None and config.finetune.epochs > 0:
        need_data(ctx, "quant.uniform")
    warnings = fold_bn_.handler(model, FoldBNConfig(), ctx).warnings
    layers = lowbit_layers(model, config.include, config.exclude, config.keep_ends, "quant.uniform")
    wrappers = {name: LatentWeight(layer, lambda w: uniform_quantize(w, config.bits)) for name, layer in layers}
    trained = train_latent_(model, wrappers, ctx, config.finetune)
    bits = {name: float(config.bits) for name, _ in layers}
    scales = {name: layer.weight.shape[0] for name, layer in layers}
    details = lowbit_details(model, bits, scales)
    if trained:
        details["finetune"] = trained
    return HandlerResult(model, warnings, details)
