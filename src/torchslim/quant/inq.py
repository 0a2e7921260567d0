"""Incremental Network Quantization (``quant.inq``; Zhou et al. 2017, "Incremental Network
Quantization: Towards Lossless CNNs with Low-Precision Weights").

Weights become zero or signed powers of two, P_l = {±2^n1, ..., ±2^n2, 0} (eq. 2-3), with
n1 = floor(log2(4 s / 3)), s = max|W_l|, and n2 = n1 + 1 - 2^(b-1) / 2 for bit width b (one
bit for zero, one for sign: 2^(b-2) exponents). Each weight goes to the nearest element of
P_l by the rule of eq. 4: with alpha < beta adjacent in P_l, W -> beta * sgn(W) if
(alpha + beta) / 2 <= |W| < 3 beta / 2, and 0 below the smallest half-step.

Partitions (Sec. 2.2): at accumulated portions sigma (default 50%, 75%, 87.5%, 100%) the
largest-magnitude not-yet-quantized weights of every layer are quantized and frozen; the rest
are retrained between partitions with the step's ``finetune`` section, run once per stage
(:func:`torchslim.distill.finetune.finetune_`); an
``after_step`` hook resets frozen weights to their quantized values after each optimizer step
(equivalent to the paper's masked gradient, and exact under momentum). BatchNorm is folded first
so that the weights executed are the powers of two. See :mod:`.lowbit` for execution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.distill.finetune import finetune_
from torchslim.quant.lowbit import lowbit_details, lowbit_layers, need_data
from torchslim.train.config import TrainConfig


def inq_exponents(weight: torch.Tensor, bits: int) -> tuple[int, int]:
    """(n1, n2): largest and smallest exponent of P_l for this layer (eq. 2-3)."""
    s = weight.detach().abs().max().item()
    n1 = math.floor(math.log2(4.0 * s / 3.0)) if s > 0 else 0
    return n1, n1 + 1 - 2 ** (bits - 1) // 2


def power_of_two_quantize(weight: torch.Tensor, n1: int, n2: int) -> torch.Tensor:
    """Nearest element of {±2^n : n2 <= n <= n1} ∪ {0} by Zhou et al.'s rule (eq. 4)."""
    a = weight.abs()
    q = torch.zeros_like(weight)
    # beta = 2^n takes [(alpha + beta) / 2, 3 beta / 2) with alpha = beta / 2 (alpha = 0 for n2);
    # the top level also takes the rest up to s (n1 = floor(log2(4s/3)) keeps s < 3 * 2^n1).
    for n in range(n2, n1 + 1):
        beta = 2.0 ** n
        lower = 0.5 * beta if n == n2 else 0.75 * beta  # alpha = 0 below the smallest level
        upper = 1.5 * beta if n < n1 else math.inf
        q = torch.where((a >= lower) & (a < upper), torch.full_like(a, beta), q)
    return q * torch.sign(weight)


@dataclass(frozen=True)
class INQConfig(TechniqueConfig):
    """``bits``: b (5 in the paper: 16 powers of two + zero); ``portions``: accumulated % quantized per
    stage; ``finetune``: the retraining of the still-float weights after each stage but the last
    (default 1 epoch of SGD at lr 0.005 per stage)."""

    bits: int = 5
    portions: tuple[float, ...] = (50.0, 75.0, 87.5, 100.0)
    finetune: TrainConfig = TrainConfig(epochs=1, lr=0.005, weight_decay=0.0)
    keep_ends: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 3 <= self.bits <= 8:
            raise ValueError(f"field 'bits' must be in 3..8, got {self.bits}")
        if not self.portions or list(self.portions) != sorted(self.portions) or self.portions[-1] != 100.0:
            raise ValueError(f"field 'portions' must increase and end at 100, got {list(self.portions)}")

    def needs_data(self) -> str | None:
        return "training"


@register_technique("quant.inq", INQConfig)
def inq_(model: nn.Module, config: INQConfig, ctx: Context) -> HandlerResult:
    """Incremental Network Quantization: weights -> {0, ±2^n} in partitions with retraining between."""
    from torchslim.fold.bn import FoldBNConfig, fold_bn_

    need_data(ctx, "quant.inq")
    warnings = fold_bn_.handler(model, FoldBNConfig(), ctx).warnings
    layers = lowbit_layers(model, config.include, config.exclude, config.keep_ends, "quant.inq")
    exponents = {name: inq_exponents(layer.weight, config.bits) for name, layer in layers}
    frozen = {name: torch.zeros_like(layer.weight, dtype=torch.bool) for name, layer in layers}
    values = {name: torch.zeros_like(layer.weight) for name, layer in layers}
    accuracy_per_stage = []
    trained = []

    def keep_frozen(_: object) -> None:
        with torch.no_grad():
            for name, layer in layers:
                layer.weight.copy_(torch.where(frozen[name], values[name], layer.weight))

    for stage, portion in enumerate(config.portions):
        with torch.no_grad():
            for name, layer in layers:
                w = layer.weight
                count = round(w.numel() * portion / 100.0)
                order = torch.argsort(torch.where(frozen[name], torch.full_like(w, math.inf), w.abs()).flatten(),
                                      descending=True)
                mask = frozen[name].flatten().clone()
                mask[order[:count]] = True  # already-frozen weights sort first (inf), so this adds the largest new ones
                frozen[name] = mask.view_as(w)
                values[name] = torch.where(frozen[name], power_of_two_quantize(w, *exponents[name]), values[name])
            keep_frozen(None)
        if portion < 100.0:  # a new shuffle per stage: the stage's seed
            trained.append(finetune_(model, config.finetune, replace(ctx, seed=ctx.seed + stage),
                                     after_step=[keep_frozen]))
            model.eval()
        if ctx.eval_fn is not None:
            accuracy_per_stage.append(ctx.eval_fn(model))
    bits = {name: float(config.bits) for name, _ in layers}
    details = lowbit_details(model, bits, {name: 0 for name, _ in layers})  # one exponent offset, no scales
    details.update(portions=list(config.portions), exponents={n: list(e) for n, e in exponents.items()},
                   accuracy_per_stage=accuracy_per_stage, finetune_per_stage=trained)
    return HandlerResult(model, warnings, details)
