"""Trained Ternary Quantization (``quant.ttq``; Zhu et al. 2017, "Trained Ternary Quantization").

Per layer, latent float weights W are ternarised with the threshold Delta = t * max|W|
(eq. 9, t = 0.05 in the paper) and two learned positive scalars (eq. 6):

    W_t = W_p  if W > Delta;   0  if |W| <= Delta;   -W_n  if W < -Delta

Gradients (eq. 7-8): dL/dW_p = sum over I_p of dL/dW_t, dL/dW_n = sum over I_n of -dL/dW_t, and
the latent weights get dL/dW_t scaled by W_p on I_p, 1 on I_z and W_n on I_n. The first and
last layers stay float, as in the paper. Storage: 2 bits per weight + two float32 per layer;
execution stays float (see :mod:`.lowbit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.quant.lowbit import LatentWeight, lowbit_details, lowbit_layers, need_data, train_latent_
from torchslim.train.config import TrainConfig


def ternarize(w: torch.Tensor, w_p: torch.Tensor, w_n: torch.Tensor, threshold: float) -> torch.Tensor:
    """TTQ forward with the paper's gradients for W, W_p and W_n (see module docstring)."""
    delta = threshold * w.detach().abs().max()
    pos = (w.detach() > delta).to(w.dtype)
    neg = (w.detach() < -delta).to(w.dtype)
    factor = (pos * w_p + neg * w_n + (1 - pos - neg)).detach()
    return w_p * pos - w_n * neg + (w - w.detach()) * factor


@dataclass(frozen=True)
class TTQConfig(TechniqueConfig):
    """``threshold``: t in Delta = t * max|W|; ``finetune``: training of W, W_p, W_n (Adam in the
    paper; default 3 epochs of AdamW at lr 0.001)."""

    threshold: float = 0.05
    finetune: TrainConfig = TrainConfig(epochs=3, lr=0.001, optimizer="adamw", weight_decay=0.0)
    keep_ends: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"field 'threshold' must be in (0, 1), got {self.threshold}")

    def needs_data(self) -> str | None:
        return "training"


@register_technique("quant.ttq", TTQConfig)
def ttq_(model: nn.Module, config: TTQConfig, ctx: Context) -> HandlerResult:
    """Trained Ternary Quantization: weights in {-W_n, 0, +W_p} with learned per-layer scales."""
    need_data(ctx, "quant.ttq")
    layers = lowbit_layers(model, config.include, config.exclude, config.keep_ends, "quant.ttq")
    wrappers = {}
    for name, layer in layers:
        w = layer.weight.detach()
        delta = config.threshold * w.abs().max()
        # init: mean magnitude of the weights each scale replaces (Zhu et al. start from a float model)
        w_p = nn.Parameter(w[w > delta].mean().reshape(()) if (w > delta).any() else torch.tensor(1e-3))
        w_n = nn.Parameter(-w[w < -delta].mean().reshape(()) if (w < -delta).any() else torch.tensor(1e-3))
        wrappers[name] = LatentWeight(
            layer, lambda x, p=w_p, n=w_n: ternarize(x, p, n, config.threshold), {"w_p": w_p, "w_n": w_n})
    trained = train_latent_(model, wrappers, ctx, config.finetune)
    scales = {name: [round(w.extra["w_p"].item(), 6), round(w.extra["w_n"].item(), 6)] for name, w in wrappers.items()}
    sparsity = {name: round(float((layer.weight == 0).float().mean()), 4) for name, layer in layers}
    details = lowbit_details(model, {name: 2.0 for name, _ in layers}, {name: 2 for name, _ in layers})
    details.update(scales_wp_wn=scales, zero_fraction=sparsity, finetune=trained)
    return HandlerResult(model, [], details)
