"""Trained quantization by weight sharing (Han et al. 2016, "Deep Compression", s. 3).

Per layer, the non-zero weights are clustered into k = 2**bits shared values by 1-D k-means,
minimising sum_i |w_i - c_{a(i)}|^2 (eq. 1). Initialisation (s. 3.2; Fig. 4 finds linear
best, because it keeps the rare large weights): ``linear`` spaces c evenly over
[min w, max w]; ``density`` spaces them evenly in the CDF of w; ``random`` (Forgy) picks k
weights at random. Lloyd's iterations are exact in 1-D: sorted centroids, assignment by
midpoints (``torch.bucketize``).

Fine-tuning (s. 3.3): the weight is re-expressed as W = where(mask, c[a], 0) through a
``torch.nn.utils.parametrize`` parametrization whose parameter is c, so autograd gives each
centroid the sum of its weights' gradients, dL/dc_k = sum_{a(i)=k} dL/dW_i (eq. 3), and
pruned weights stay exactly zero. The nested ``finetune`` run trains the centroids (and
biases); the result is baked back into plain weights holding at most k distinct non-zero values.

1-D k-means is written here (20 lines) rather than taken from scikit-learn: it is exact with
sorted centroids and needs no distance matrix; tests check it against ``sklearn.cluster.KMeans``
from the same initial centroids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.numerics import sqnr_from_energy
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerKind, layer_classes, select_layers, unknown_name_error
from torchslim.distill.finetune import finetune_
from torchslim.train.config import TrainConfig


@dataclass(frozen=True)
class KMeansConfig(TechniqueConfig):
    """``bits``: k = 2**bits shared values per layer (``layer_bits`` per layer name).
    ``float16``: round centroids and biases of the shared layers to float16 values after
    fine-tuning, halving what the file spends on codebooks and biases.
    ``finetune``: the centroid fine-tuning run (``epochs: 0``: cluster only)."""

    keeps_layer_names: ClassVar[bool] = True  # layers keep their names (no containers)

    bits: int = 5
    layer_bits: dict[str, int] = field(default_factory=dict)
    init: Literal["linear", "density", "random"] = "linear"
    iterations: int = 50
    float16: bool = False
    finetune: TrainConfig = TrainConfig(epochs=2, lr=0.001, weight_decay=0.0)
    layer_types: tuple[LayerKind, ...] = ("linear", "conv")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for b in (self.bits, *self.layer_bits.values()):
            if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 12:
                raise ValueError(f"field 'bits'/'layer_bits': bits must be an integer in 1..12, got {b!r}")
        if self.iterations < 1:
            raise ValueError(f"field 'iterations' must be >= 1, got {self.iterations}")


def init_centroids(values: torch.Tensor, k: int, method: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """(k,) sorted initial centroids for the 1-D ``values`` (Han et al. 2016, s. 3.2)."""
    v = values.double()
    if method == "linear":
        return torch.linspace(v.min().item(), v.max().item(), k, dtype=torch.float64)
    if method == "density":
        return torch.quantile(v, (torch.arange(k, dtype=torch.float64) + 0.5) / k)
    if method == "random":
        pick = torch.randperm(v.numel(), generator=generator)[:k]
        return v[pick].sort().values
    raise ValueError(f"unknown init {method!r}")


def kmeans_1d(values: torch.Tensor, centroids: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's algorithm in 1-D: (centroids (k,) float64 sorted, assignment (n,) int64).

    An empty cluster keeps its centroid. Stops when the assignment no longer changes.
    """
    v = values.double().reshape(-1)
    c = centroids.double().sort().values.clone()
    assign = None
    for _ in range(iterations):
        new = torch.bucketize(v, (c[1:] + c[:-1]) / 2)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        sums = torch.zeros_like(c).index_add_(0, assign, v)
        counts = torch.bincount(assign, minlength=c.numel())
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        c = c.sort().values  # means of ordered 1-D clusters stay ordered; sort guards float ties
    return c, torch.bucketize(v, (c[1:] + c[:-1]) / 2)


class SharedWeight(nn.Module):
    """Parametrization W = where(mask, centroids[index], 0): index/mask (weight shape) buffers."""

    def __init__(self, index: torch.Tensor, mask: torch.Tensor, centroids: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index)
        self.register_buffer("mask", mask)
        self.initial = centroids

    def forward(self, centroids: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, centroids[self.index], torch.zeros((), dtype=centroids.dtype))

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return self.initial.to(weight)  # the weight's dtype and device


def cluster_layer(weight: torch.Tensor, bits: int, init: str, iterations: int,
                  generator: torch.Generator | None = None) -> SharedWeight | None:
    """k-means over the layer's non-zero weights; None when it has none."""
    w = weight.detach().cpu()  # 1-D k-means runs on the CPU; the parametrization moves with the model
    mask = w != 0
    values = w[mask]
    if values.numel() == 0:
        return None
    k = min(2**bits, int(torch.unique(values).numel()))
    centroids, assign = kmeans_1d(values, init_centroids(values, k, init, generator), iterations)
    index = torch.zeros(weight.shape, dtype=torch.long)
    index[mask] = assign
    return SharedWeight(index, mask, centroids.float())


@torch.no_grad()
def round_to_float16_(tensor: torch.Tensor) -> None:
    """Round to the nearest float16 value in place; a value that underflows to zero becomes
    +0.0 (float16 keeps the sign of a tiny negative, and -0.0 would be stored as a non-zero)."""
    tensor.copy_(tensor.half().float())
    tensor.masked_fill_(tensor == 0, 0.0)


@register_technique("quant.kmeans", KMeansConfig)
def kmeans_(model: nn.Module, config: KMeansConfig, ctx: Context) -> HandlerResult:
    """Weight sharing: per-layer k-means (k = 2^bits), then centroid fine-tuning (Han 2016)."""
    selected = select_layers(model, layer_classes(config.layer_types), config.include, config.exclude)
    if not selected:
        return HandlerResult(model, ["quant.kmeans: no layer matches layer_types/include/exclude; nothing shared"])
    names = [n for n, _ in selected]
    for name in config.layer_bits:
        if name not in names:
            raise unknown_name_error("layer_bits", name, names)
    generator = torch.Generator().manual_seed(ctx.seed)
    details: dict[str, dict] = {}
    shared: list[nn.Module] = []
    for name, layer in selected:
        bits = config.layer_bits.get(name, config.bits)
        param = cluster_layer(layer.weight, bits, config.init, config.iterations, generator)
        if param is None:
            continue
        before = layer.weight.detach().clone()
        parametrize.register_parametrization(layer, "weight", param.to(layer.weight.device), unsafe=True)
        err = (layer.weight.detach() - before).double().pow(2).sum().item()
        sqnr = sqnr_from_energy(before.double().pow(2).sum().item(), err)
        details[name] = {"bits": bits, "clusters": int(param.initial.numel()), "kmeans_sse": err,
                         "sqnr_db": None if sqnr is None else round(sqnr, 2)}
        shared.append(layer)
    try:
        trained = finetune_(model, config.finetune, ctx)
    finally:
        for layer in shared:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    if config.float16:
        # Centroids and biases rounded to float16 values: the codec then stores them in 2 bytes
        # (exactly: it checks every value survives the float16 round trip bit for bit).
        for _, layer in selected:
            for p in (layer.weight, getattr(layer, "bias", None)):
                if p is not None and p.dtype == torch.float32:
                    round_to_float16_(p)
    for name, layer in selected:
        if name in details:
            w = layer.weight.detach()
            details[name]["distinct_after"] = int(torch.unique(w[w != 0]).numel())
    return HandlerResult(model, [], {"layers": details, "finetune": trained,
                                     "val_accuracy": trained.get("val_accuracy", [])})
