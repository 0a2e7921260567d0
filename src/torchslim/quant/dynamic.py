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

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import set_submodule
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import select_layers
from torchslim.quant.modules import DynamicQuantizedLinear
from torchslim.quant.observers import quantize_weight, symmetric_weight_scales


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
