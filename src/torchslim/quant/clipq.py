"""CLIP-Q: pruning and quantization in one fine-tuning pass (Tung & Mori 2018, "CLIP-Q: Deep
Network Compression Learning by In-Parallel Pruning-Quantization").

Per layer l with clipping rate p_l and bit width b_l, at every training step (s. 3.1):
- clipping: the fraction p_l of the smallest positive weights and of the smallest-magnitude
  negative weights is set to zero (thresholds c+ and c- recomputed each step, so clipped
  weights may come back);
- quantization: the remaining weights are split into 2**b_l - 1 equal-width bins over their
  range and each is replaced by the mean of the full-precision weights in its bin; zero is
  the 2**b_l-th level.
The forward pass uses the clipped-quantized weights, the update goes to the full-precision
weights (straight-through), and at the end the layers keep the clipped-quantized values.

Choosing (p_l, b_l) jointly under a size budget (s. 3.2): the paper runs Bayesian
optimisation on error - lambda x compression. Here every pair of a grid is scored by the
calibration-loss increase when only that layer is clip-quantized, its size is estimated as
n_l [(1 - p_l) b_l + H2(1 - p_l)] bits (value codes plus the entropy of the positions,
H2 the binary entropy), and the per-layer choices minimising the summed loss increase under
the budget are found by Lagrangian relaxation of that multiple-choice knapsack (bisection on
lambda). That is deterministic, costs |grid| forward passes per layer, and solves the
additive surrogate exactly at the lambda found; it replaces BO, not the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import evaluating
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerKind, layer_classes, select_layers
from torchslim.data.access import first_samples
from torchslim.distill.finetune import finetune_
from torchslim.errors import UserError
from torchslim.train.config import TrainConfig
from torchslim.train.evaluate import model_device


@dataclass(frozen=True)
class ClipQConfig(TechniqueConfig):
    """``target_size``: reduction factor (> 1) of the selected layers' weights, dense float32
    bytes / estimated compressed bytes (value codes plus ideal position coding; biases and
    file overhead are not counted). ``clip_rates`` x ``bits`` is the per-layer search grid.
    ``finetune``: the clip-quantized fine-tuning run."""

    target_size: float = 40.0
    clip_rates: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98)
    bits: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
    calibration_samples: int = 512
    finetune: TrainConfig = TrainConfig(epochs=4, lr=0.01, weight_decay=0.0)
    layer_types: tuple[LayerKind, ...] = ("linear", "conv")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.target_size <= 1:
            raise ValueError(f"field 'target_size' must be > 1, got {self.target_size}")
        if self.calibration_samples < 1:
            raise ValueError(f"field 'calibration_samples' must be >= 1, got {self.calibration_samples}")
        if not self.clip_rates or any(not 0 <= p < 1 for p in self.clip_rates):
            raise ValueError("field 'clip_rates': values must be in [0, 1)")
        if not self.bits or any(not 1 <= b <= 12 for b in self.bits):
            raise ValueError("field 'bits': values must be in 1..12")

    def needs_data(self) -> str | None:
        return "layer scoring"


def clip_quantize(w: torch.Tensor, clip_rate: float, bits: int) -> torch.Tensor:
    """Tung & Mori 2018, s. 3.1: clip the p smallest of each sign to +0.0, then replace the rest
    by the mean of their bin among 2**bits - 1 equal-width bins over [min, max]."""
    flat = w.detach().reshape(-1)
    keep = flat != 0
    for side in (flat > 0, flat < 0):
        mags = flat[side].abs()
        k = int(clip_rate * mags.numel())
        if k:
            threshold = mags.kthvalue(k).values
            keep &= ~(side & (flat.abs() <= threshold))
    values = flat[keep].double()
    out = torch.zeros_like(flat)
    if values.numel() == 0:
        return out.reshape(w.shape)
    levels = 2**bits - 1
    lo, hi = values.min(), values.max()
    width = (hi - lo) / levels if hi > lo else torch.ones((), dtype=torch.float64, device=values.device)
    bins = ((values - lo) / width).floor().clamp(0, levels - 1).long()
    sums = torch.zeros(levels, dtype=torch.float64, device=values.device).index_add_(0, bins, values)
    means = sums / torch.bincount(bins, minlength=levels).clamp(min=1)
    out[keep] = means[bins].to(out.dtype)
    # A bin mean can round to 0.0 only if its weights cancel exactly; keep zeros +0.0.
    return torch.where(out == 0, torch.zeros((), dtype=out.dtype, device=out.device), out).reshape(w.shape)


class ClipQuantSTE(nn.Module):
    """Parametrization: forward with clip_quantize(W), gradient straight through to W."""

    def __init__(self, clip_rate: float, bits: int) -> None:
        super().__init__()
        self.clip_rate, self.bits = clip_rate, bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (clip_quantize(w, self.clip_rate, self.bits) - w).detach()


def estimated_bits(numel: int, clip_rate: float, bits: int) -> float:
    """n [(1 - p) b + H2(1 - p)]: value codes plus the ideal cost of the positions."""
    d = 1.0 - clip_rate
    h2 = 0.0 if d in (0.0, 1.0) else -(d * math.log2(d) + (1 - d) * math.log2(1 - d))
    return numel * (d * bits + h2)


@torch.no_grad()
def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return F.cross_entropy(model(x), y).item()


def choose(scores: dict[str, list[tuple[float, float, tuple[float, int]]]], budget_bits: float) -> dict[str, int]:
    """Per layer, the index into its (loss increase, bits, config) list minimising the total loss
    increase subject to total bits <= budget, by bisection on the Lagrange multiplier."""
    def pick(lam: float) -> tuple[dict[str, int], float]:
        chosen = {n: min(range(len(opts)), key=lambda i: (opts[i][0] + lam * opts[i][1], opts[i][1]))
                  for n, opts in scores.items()}
        return chosen, sum(scores[n][i][1] for n, i in chosen.items())

    lo, hi = 0.0, 1.0
    while pick(hi)[1] > budget_bits:
        hi *= 4
        if hi > 1e12:
            smallest = sum(min(o[1] for o in opts) for opts in scores.values())
            raise UserError(f"field 'target_size': unreachable with these grids (smallest estimate "
                            f"{smallest / 8:.0f} bytes > budget {budget_bits / 8:.0f} bytes)")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if pick(mid)[1] <= budget_bits else (mid, hi)
    return pick(hi)[0]


@register_technique("quant.clipq", ClipQConfig)
def clipq_(model: nn.Module, config: ClipQConfig, ctx: Context) -> HandlerResult:
    """CLIP-Q (Tung & Mori 2018): per-layer clip rate and bits chosen under a size budget, then
    pruning-quantization in parallel with fine-tuning."""
    if ctx.data is None:
        raise UserError("quant.clipq: needs data (recipe 'data' section) to score and fine-tune layers")
    selected = select_layers(model, layer_classes(config.layer_types), config.include, config.exclude)
    if not selected:
        return HandlerResult(model, ["quant.clipq: no layer matches layer_types/include/exclude; nothing quantized"])
    x, y = first_samples(ctx.data.train, config.calibration_samples, device=model_device(model))
    scores: dict[str, list[tuple[float, float, tuple[float, int]]]] = {}
    with evaluating(model):
        base = _loss(model, x, y)
        for name, layer in selected:
            original = layer.weight.detach().clone()
            options = []
            for p in config.clip_rates:
                for b in config.bits:
                    with torch.no_grad():
                        layer.weight.copy_(clip_quantize(original, p, b))
                    options.append((_loss(model, x, y) - base, estimated_bits(original.numel(), p, b), (p, b)))
            with torch.no_grad():
                layer.weight.copy_(original)
            scores[name] = options
    dense_bits = 32 * sum(layer.weight.numel() for _, layer in selected)
    chosen = choose(scores, dense_bits / config.target_size)
    settings = {n: scores[n][i][2] for n, i in chosen.items()}
    for name, layer in selected:
        parametrize.register_parametrization(layer, "weight", ClipQuantSTE(*settings[name]))
    try:
        trained = finetune_(model, config.finetune, ctx)
    finally:
        for name, layer in selected:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            with torch.no_grad():
                layer.weight.copy_(clip_quantize(layer.weight, *settings[name]))
    layers = {n: {"clip_rate": settings[n][0], "bits": settings[n][1],
                  "loss_increase": round(scores[n][chosen[n]][0], 5),
                  "estimated_bytes": round(scores[n][chosen[n]][1] / 8),
                  "density_pct": round(100 * (m.weight != 0).float().mean().item(), 2)} for n, m in selected}
    estimate = sum(v["estimated_bytes"] for v in layers.values())
    return HandlerResult(model, [], {"layers": layers, "estimated_bytes": estimate,
                                     "estimated_size_reduction": round(dense_bits / 8 / max(estimate, 1), 2),
                                     "finetune": trained, "val_accuracy": trained.get("val_accuracy", [])})
