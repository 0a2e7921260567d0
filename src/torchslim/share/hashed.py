"""HashedNets (Chen et al. 2015, "Compressing Neural Networks with the Hashing Trick").

A layer's virtual weight matrix V (out x in, or out x in x kh x kw) is never stored: each
entry reads one of K real parameters through a hash, with a second hash giving a sign
(eq. 5-6, the sign removes the bias of collisions):

    V_ij = xi(i, j) * w_{h(i, j)},   h -> {0..K-1},  xi -> {-1, +1}

so dL/dw_k = sum_{h(i,j)=k} xi(i,j) dL/dV_ij (eq. 8), which autograd gives through the gather.
The hashes are murmur3's 32-bit finaliser of the flat index (mixed with the layer's ``seed``),
recomputed from ``seed`` at construction: only ``hashed_weight`` (K,) and the bias are saved.

``share.hashed`` swaps Linear/Conv2d layers for hashed ones with K = ceil(weights /
target_params) real parameters each (the paper's compression factor 1/8 .. 1/64 is
``target_params: 8`` .. ``64``) and trains the network (nested ``finetune``); ``init: scratch``
trains from a fresh initialisation as the paper does, ``init: dense`` starts from the
least-squares projection of the dense weights (w_k = mean of xi V over the bucket).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import set_submodule
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import LayerKind, layer_classes, select_layers
from torchslim.distill.finetune import finetune_
from torchslim.serialize.spec import allow_module
from torchslim.train.config import TrainConfig

_M32 = 0xFFFFFFFF


def fmix32(x: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finaliser on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _M32  # int64 products wrap; the low 32 bits are exact
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


def hash_index_sign(numel: int, buckets: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(bucket (numel,) int64 in [0, buckets), sign (numel,) float32 in {-1, 1})."""
    flat = torch.arange(numel, dtype=torch.int64)
    salt = int(fmix32(torch.tensor([seed & _M32]))[0])
    index = fmix32((flat * 0x9E3779B1 + salt) & _M32) % buckets
    sign_bits = fmix32((flat * 0x85EBCA77 + (salt ^ 0x5BD1E995)) & _M32) & 1
    return index, sign_bits.float() * 2 - 1


class _Hashed(nn.Module):
    def _init_hash(self, shape: tuple[int, ...], fan_in: int, bias: bool) -> None:
        self.virtual_shape = shape
        index, sign = hash_index_sign(math.prod(shape), self.buckets, self.seed)
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("sign", sign, persistent=False)
        bound = 1 / math.sqrt(fan_in)  # nn.Linear / nn.Conv2d's default range for V
        self.hashed_weight = nn.Parameter(torch.empty(self.buckets).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(shape[0]).uniform_(-bound, bound)) if bias else None

    def virtual_weight(self) -> torch.Tensor:
        """V = sign * hashed_weight[index], in the shape of the dense layer's weight."""
        return (self.sign * self.hashed_weight[self.index]).reshape(self.virtual_shape)

    @torch.no_grad()
    def project_(self, weight: torch.Tensor) -> None:
        """Least-squares fit of ``hashed_weight`` to a dense weight: mean of sign * W per bucket."""
        target = (self.sign * weight.reshape(-1)).double()
        sums = torch.zeros(self.buckets, dtype=torch.float64).index_add_(0, self.index, target)
        counts = torch.bincount(self.index, minlength=self.buckets).clamp(min=1)
        self.hashed_weight.copy_((sums / counts).float())


@allow_module
class HashedLinear(_Hashed):
    """(N, in_features) -> (N, out_features) with a hashed (out, in) weight of ``buckets`` reals."""

    def __init__(self, in_features: int, out_features: int, buckets: int, bias: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.in_features, self.out_features, self.buckets, self.seed = in_features, out_features, buckets, seed
        self._init_hash((out_features, in_features), in_features, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.virtual_weight(), self.bias)


@allow_module
class HashedConv2d(_Hashed):
    """Conv2d (groups 1) whose (out, in, kh, kw) weight is hashed into ``buckets`` reals."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], buckets: int,
                 stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0), bias: bool = True,
                 seed: int = 0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.buckets, self.seed = in_channels, out_channels, buckets, seed
        self.kernel_size, self.stride, self.padding = tuple(kernel_size), tuple(stride), tuple(padding)
        shape = (out_channels, in_channels, *self.kernel_size)
        self._init_hash(shape, in_channels * math.prod(self.kernel_size), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.virtual_weight(), self.bias, self.stride, self.padding)


@dataclass(frozen=True)
class HashedConfig(TechniqueConfig):
    """``target_params``: reduction factor (> 1) of each hashed layer's weight, virtual weights /
    real parameters (biases are kept as they are). ``finetune``: the training run; with
    ``init: scratch`` it is the whole training of the hashed layers."""

    target_params: float = 8.0
    init: Literal["scratch", "dense"] = "scratch"
    finetune: TrainConfig = TrainConfig(epochs=10, lr=0.05, weight_decay=0.0)
    layer_types: tuple[LayerKind, ...] = ("linear", "conv")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.target_params > 1.0:
            raise ValueError(f"field 'target_params' must be > 1, got {self.target_params}")


def hashed_like(layer: nn.Module, target_params: float, seed: int) -> _Hashed | None:
    """A hashed replacement for ``layer`` (None for layer kinds HashedNets does not cover)."""
    buckets = max(1, math.ceil(layer.weight.numel() / target_params))
    bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        return HashedLinear(layer.in_features, layer.out_features, buckets, bias, seed)
    if isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.dilation == (1, 1) and \
            isinstance(layer.padding, tuple) and layer.padding_mode == "zeros":
        return HashedConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, buckets, layer.stride,
                            layer.padding, bias, seed)
    return None


@register_technique("share.hashed", HashedConfig)
def hashed_(model: nn.Module, config: HashedConfig, ctx: Context) -> HandlerResult:
    """HashedNets (Chen 2015): Linear/Conv2d weights read from a hashed parameter vector, then train."""
    selected = select_layers(model, layer_classes(config.layer_types), config.include, config.exclude)
    if not selected:
        return HandlerResult(model, ["share.hashed: no layer matches layer_types/include/exclude; nothing hashed"])
    warnings, replaced = [], {}
    for i, (name, layer) in enumerate(selected):
        new = hashed_like(layer, config.target_params, ctx.seed * 1000 + i)
        if new is None:
            warnings.append(f"{name}: {type(layer).__name__} with groups/dilation/padding mode not hashed")
            continue
        if config.init == "dense":
            new.project_(layer.weight.detach())
            if layer.bias is not None:
                new.bias.data.copy_(layer.bias.detach())
        set_submodule(model, name, new)
        replaced[name] = {"virtual": layer.weight.numel(), "buckets": new.buckets}
    if config.init == "scratch" and config.finetune.epochs == 0 and replaced:
        warnings.append("init: scratch with finetune epochs 0 leaves the hashed layers at random initialisation")
    trained = finetune_(model, config.finetune, ctx)
    virtual = sum(v["virtual"] for v in replaced.values())
    real = sum(v["buckets"] for v in replaced.values())
    return HandlerResult(model, warnings, {"layers": replaced, "virtual_weights": virtual, "real_weights": real,
                                           "params_reduction": round(virtual / max(real, 1), 2),
                                           "finetune": trained, "val_accuracy": trained.get("val_accuracy", [])})
