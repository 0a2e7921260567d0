"""Binary weights (``quant.binary``): BinaryConnect and XNOR-Net.

- ``binaryconnect`` (Courbariaux et al. 2015, "BinaryConnect"): deterministic binarisation
  W_b = sign(W) of latent float weights, straight-through gradient 1_{|W| <= 1} and latent
  weights clipped to [-1, 1] after every update (Alg. 1). As the issue asks for scaling
  factors, each output channel is scaled by alpha_c = mean|W_c| (the optimal scale of
  Rastegari et al. 2016, eq. 4); with BatchNorm after the layer this changes nothing but the
  latent weights' range.
- ``xnor`` (Rastegari et al. 2016, "XNOR-Net"): the same binary weights and binary inputs:
  y = (sign(I - mu) (*) W_b) . K + W_b (*) mu, with K = A (*) k (eq. 11: A the channel-mean of
  |I - mu| per position, k a kh x kw averaging kernel). The paper binarises the output of a
  BatchNorm (block order BN -> BinActiv -> BinConv); the zoo nets feed convs with ReLU outputs,
  whose sign is always +1, so the centring BN provides is done here with ``mu``, the
  per-channel mean of the layer's input on the training data, and its constant contribution
  W_b (*) mu is added back. :class:`XNORConv2d` / :class:`XNORLinear` keep that forward in the
  saved model. First and last layers stay float (as in the paper).

Storage: 1 bit per weight + one float32 per output channel; execution stays float (no
XNOR-popcount kernels in the CPU runtimes; see :mod:`.lowbit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import evaluating, set_submodule
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.data.access import first_inputs
from torchslim.quant.lowbit import LatentWeight, lowbit_details, lowbit_layers, need_data, sign_ste, train_latent_
from torchslim.serialize.spec import allow_module
from torchslim.train.config import TrainConfig
from torchslim.train.evaluate import model_device


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """alpha_c * sign(W_c), alpha_c = mean|W_c| over each output channel; STE for sign."""
    alpha = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
    return sign_ste(w) * alpha


class XNORConv2d(nn.Conv2d):
    """Conv2d on binarised, centred inputs (Rastegari et al. 2016, eq. 11); ``input_mean``: mu (C,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.register_buffer("input_mean", torch.zeros(self.in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = self.input_mean.view(1, -1, 1, 1)
        centred = x - mu
        a = centred.abs().mean(dim=1, keepdim=True)  # A: (N, 1, H, W)
        k = torch.full((1, 1, *self.kernel_size), 1.0 / (self.kernel_size[0] * self.kernel_size[1]),
                       dtype=x.dtype, device=x.device)
        scale = F.conv2d(a, k, None, self.stride, self.padding, self.dilation)  # K = A (*) k
        binary = F.conv2d(sign_ste(centred), self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        shift = F.conv2d(mu.expand_as(x), self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return binary * scale + shift


class XNORLinear(nn.Linear):
    """Linear on binarised, centred inputs; K = mean|I - mu| per example."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("input_mean", torch.zeros(self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - self.input_mean
        scale = centred.abs().mean(dim=-1, keepdim=True)
        return F.linear(sign_ste(centred), self.weight) * scale + F.linear(self.input_mean, self.weight, self.bias)


for _cls in (XNORConv2d, XNORLinear):
    allow_module(_cls)


@torch.no_grad()
def _to_xnor(layer: nn.Module, mean: torch.Tensor) -> nn.Module:
    if isinstance(layer, nn.Conv2d):
        new = XNORConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                         layer.dilation, layer.groups, layer.bias is not None)
    else:
        new = XNORLinear(layer.in_features, layer.out_features, layer.bias is not None)
    new.load_state_dict(layer.state_dict(), strict=False)
    new.input_mean.copy_(mean)
    return new


@torch.no_grad()
def _input_means(model: nn.Module, names: list[str], images: torch.Tensor) -> dict[str, torch.Tensor]:
    sums: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:
        def hook(m: nn.Module, args: tuple[torch.Tensor, ...], n: str = name) -> None:
            x = args[0]
            dims = (0, 2, 3) if x.dim() == 4 else tuple(range(x.dim() - 1))
            sums[n] = x.mean(dim=dims)
        handles.append(model.get_submodule(name).register_forward_pre_hook(hook))
    try:
        with evaluating(model):
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return sums


@dataclass(frozen=True)
class BinaryConfig(TechniqueConfig):
    """``method``: binaryconnect (binary weights) or xnor (binary weights and inputs);
    ``finetune``: training of the latent weights (default 3 epochs of AdamW at lr 0.001)."""

    method: Literal["binaryconnect", "xnor"] = "binaryconnect"
    finetune: TrainConfig = TrainConfig(epochs=3, lr=0.001, optimizer="adamw", weight_decay=0.0)
    keep_ends: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in ("binaryconnect", "xnor"):
            raise ValueError(f"field 'method' must be binaryconnect or xnor, got {self.method!r}")

    def needs_data(self) -> str | None:
        return "training"


@register_technique("quant.binary", BinaryConfig)
def binary_(model: nn.Module, config: BinaryConfig, ctx: Context) -> HandlerResult:
    """Binary weights (BinaryConnect) or binary weights and activations (XNOR-Net), latent float + STE."""
    need_data(ctx, "quant.binary")
    layers = lowbit_layers(model, config.include, config.exclude, config.keep_ends, "quant.binary")
    if config.method == "xnor":
        means = _input_means(model, [n for n, _ in layers], first_inputs(ctx.data.train, 256, device=model_device(model)))
        converted = []
        for name, layer in layers:
            new = _to_xnor(layer, means[name])
            set_submodule(model, name, new)
            converted.append((name, new))
        layers = converted
    with torch.no_grad():  # BinaryConnect's latent range
        for _, layer in layers:
            layer.weight.clamp_(-1.0, 1.0)
    wrappers = {name: LatentWeight(layer, binarize_weight) for name, layer in layers}

    def clip_latent(_: object) -> None:
        with torch.no_grad():
            for wrapper in wrappers.values():
                wrapper.layer.weight.clamp_(-1.0, 1.0)

    trained = train_latent_(model, wrappers, ctx, config.finetune, after_step=[clip_latent])
    details = lowbit_details(model, {name: 1.0 for name, _ in layers},
                             {name: layer.weight.shape[0] for name, layer in layers})
    details.update(method=config.method, finetune=trained)
    return HandlerResult(model, [], details)
