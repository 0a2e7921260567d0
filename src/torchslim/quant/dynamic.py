"""Dynamic int8 for Linear-heavy models (``quant.dynamic``), e.g. the zoo's ViT.

Weights are per-output-feature symmetric int8 (stored as int8); activations are quantized
per call to uint8 with the range of the current input (no calibration data needed), the
scheme of ONNX Runtime's ``quantize_dynamic`` and PyTorch's dynamic quantization:

    x_q = DynamicQuantizeLinear(x)   (s_x = (max(x, 0) - min(x, 0)) / 255, z_x = round(-min / s_x))
    y   = (x_q - z_x) @ W_int8^T * (s_x * s_w) + b

:class:`DynamicQuantizedLinear` exports exactly these ONNX ops (DynamicQuantizeLinear,
MatMulInteger, Cast, Mul, Add); ONNX Runtime fuses them into ``DynamicQuantizeMatMul`` /
``MatMulIntegerToFloat`` integer kernels. In eager PyTorch the same arithmetic is simulated
in float. Attention's activation-by-activation matmuls stay float (no weights to quantize).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import set_submodule
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import select_layers
from torchslim.quant.observers import quantize_weight, symmetric_weight_scales
from torchslim.serialize.spec import allow_module


class _DynamicLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_int8: torch.Tensor, w_scale: torch.Tensor,  # noqa: ARG004
                bias: torch.Tensor | None) -> torch.Tensor:
        lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
        scale = torch.where(hi > lo, (hi - lo) / 255.0, torch.ones_like(hi))
        zero = torch.clamp(torch.round(-lo / scale), 0, 255)
        x_q = torch.clamp(torch.round(x / scale) + zero, 0, 255)
        acc = F.linear(x_q - zero, w_int8.to(x.dtype))
        y = acc * (scale * w_scale)
        return y if bias is None else y + bias

    @staticmethod
    def symbolic(g: Any, x: Any, w_int8: Any, w_scale: Any, bias: Any) -> Any:
        x_q, x_scale, x_zero = g.op("DynamicQuantizeLinear", x, outputs=3)
        w_t = g.op("Transpose", w_int8, perm_i=[1, 0])
        out_features = w_scale.type().sizes()[0]
        w_zero = g.op("Constant", value_t=torch.zeros(out_features, dtype=torch.int8))
        acc = g.op("MatMulInteger", x_q, w_t, x_zero, w_zero)
        y = g.op("Mul", g.op("Cast", acc, to_i=1), g.op("Mul", x_scale, w_scale))  # to_i=1: FLOAT
        if bias is None or bias.node().mustBeNone():
            return y
        return g.op("Add", y, bias)


class DynamicQuantizedLinear(nn.Module):
    """Linear with int8 weights (per output feature) and per-call uint8 activations; (..., I) -> (..., O)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_int8 = nn.Parameter(torch.zeros(out_features, in_features, dtype=torch.int8), requires_grad=False)
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_parameter("bias", nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _DynamicLinear.apply(x, self.weight_int8, self.weight_scale, self.bias)


allow_module(DynamicQuantizedLinear)


@dataclass(frozen=True)
class DynamicConfig(TechniqueConfig):
    """``include``/``exclude``: Linear layers (names or ``re:`` patterns); ``export_onnx``: check ORT ops."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    export_onnx: bool = True


@register_technique("quant.dynamic", DynamicConfig)
def dynamic_(model: nn.Module, config: DynamicConfig, ctx: Context) -> HandlerResult:
    """Dynamic int8 Linear layers (int8 weights, per-call activation ranges) for ORT's integer matmuls."""
    layers = select_layers(model, (nn.Linear,), config.include, config.exclude)
    if not layers:
        return HandlerResult(model, ["quant.dynamic: no Linear layer to quantize (none in the model, or none "
                                     "selected by include/exclude); the model is unchanged"],
                             {"quantized_linear_layers": 0})
    for name, layer in layers:
        new = DynamicQuantizedLinear(layer.in_features, layer.out_features, layer.bias is not None)
        with torch.no_grad():
            scales = symmetric_weight_scales(layer.weight)
            new.weight_scale.copy_(scales)
            new.weight_int8.copy_(quantize_weight(layer.weight, scales))
            if layer.bias is not None:
                new.bias.copy_(layer.bias)
        set_submodule(model, name, new)
    details: dict[str, object] = {"quantized_linear_layers": len(layers)}
    warnings: list[str] = []
    if config.export_onnx:
        from torchslim.quant.onnx_check import export_and_check

        export_details, warnings = export_and_check(model, ctx, "quant_dynamic_int8.onnx")
        details.update(export_details)
    return HandlerResult(model, warnings, details)
