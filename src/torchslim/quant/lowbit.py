"""Shared machinery of the low-bit weight techniques (uniform k-bit, INQ, TTQ, binary).

Honest scope: these produce weights whose *values* lie on a k-bit grid (k = 1..8) and report
the storage size at that bit width, but they keep float ``nn.Conv2d`` / ``nn.Linear`` modules
for execution: CPU runtimes (ONNX Runtime, PyTorch) have no 2-5 bit or ternary kernels, so
the model runs at fp32 speed. ``size_bytes_at_bit_width`` in the step details is
``ceil(n_weights * bits / 8)`` plus the float32 scales of each low-bit layer, and the float32
size of everything else.

Training uses latent float weights (Courbariaux et al. 2015): :class:`LatentWeight` wraps a
layer and calls it with ``quantizer(weight)`` substituted (``torch.func.functional_call``),
so gradients reach the latent weights through each technique's straight-through estimator;
:func:`train_latent_` trains them with the step's ``finetune`` section
(:func:`torchslim.distill.finetune.finetune_`, distillation included) and writes the quantized
weights back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from torchslim.core.context import Context
from torchslim.core.modules import set_submodule
from torchslim.core.select import select_layers
from torchslim.distill.finetune import finetune_
from torchslim.errors import UserError
from torchslim.quant.modules import StandIn
from torchslim.train import StepHook
from torchslim.train.config import TrainConfig

LOWBIT_TYPES = (nn.Conv2d, nn.Linear)
Quantizer = Callable[[torch.Tensor], torch.Tensor]


def lowbit_layers(model: nn.Module, include: Sequence[str], exclude: Sequence[str], keep_ends: bool,
                  step: str) -> list[tuple[str, nn.Module]]:
    """Conv2d/Linear layers to quantize; with ``keep_ends`` the first and last stay float
    (as in INQ's baselines, TTQ and XNOR-Net: they hold little weight but much accuracy)."""
    layers = select_layers(model, LOWBIT_TYPES, include, exclude)
    if keep_ends and len(layers) > 2:
        everything = select_layers(model, LOWBIT_TYPES)
        ends = {everything[0][0], everything[-1][0]}
        layers = [(n, m) for n, m in layers if n not in ends]
    if not layers:
        raise UserError(f"{step}: no Conv2d/Linear layer selected (check include/exclude)")
    return layers


def need_data(ctx: Context, step: str) -> None:
    if ctx.data is None:
        raise UserError(f"{step} needs training data: set 'data:' in the recipe (or data= in compress)")


class LatentWeight(StandIn):
    """Training-time wrapper: runs ``layer`` with ``quantizer(layer.weight)`` in place of its weight."""

    def __init__(self, layer: nn.Module, quantizer: Quantizer, extra: dict[str, nn.Parameter] | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.quantizer = quantizer
        self.extra = nn.ParameterDict(extra or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.layer, {"weight": self.quantizer(self.layer.weight)}, (x,))


def train_latent_(model: nn.Module, wrappers: dict[str, LatentWeight], ctx: Context, config: TrainConfig | None,
                  after_step: Sequence[StepHook] = ()) -> dict[str, Any]:
    """Swap ``wrappers`` in, train per ``config`` (nothing for None or 0 epochs), swap the layers
    back with quantized weights; returns the training details for the step report."""
    for name, wrapper in wrappers.items():
        set_submodule(model, name, wrapper)
    try:
        details = finetune_(model, config, ctx, after_step=after_step)
    finally:
        for name, wrapper in wrappers.items():
            with torch.no_grad():
                wrapper.layer.weight.copy_(wrapper.quantizer(wrapper.layer.weight))
            set_submodule(model, name, wrapper.layer)
    model.eval()
    return details


def size_bytes_at_bit_width(model: nn.Module, bits: dict[str, float], scales_per_layer: dict[str, int]) -> int:
    """Weights of layers in ``bits`` at their bit width (+ float32 scales), everything else float32."""
    total = 0
    for name, tensor in model.state_dict().items():
        owner, _, leaf = name.rpartition(".")
        if owner in bits and leaf == "weight":
            total += math.ceil(tensor.numel() * bits[owner] / 8) + 4 * scales_per_layer.get(owner, 1)
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def lowbit_details(model: nn.Module, bits: dict[str, float], scales_per_layer: dict[str, int]) -> dict[str, object]:
    float_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    low = size_bytes_at_bit_width(model, bits, scales_per_layer)
    return {"bits": bits, "size_bytes_at_bit_width": low, "size_bytes_float32": float_bytes,
            "compression_ratio": round(float_bytes / low, 2),
            "execution": "float modules (values on the low-bit grid; no low-bit CPU kernels)"}


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """sign(x) (with sign(0) = +1) forward; gradient 1_{|x| <= 1} (hard-tanh STE, Courbariaux et al. 2016)."""
    binary = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    clipped = x.clamp(-1.0, 1.0)
    return (binary - clipped).detach() + clipped
