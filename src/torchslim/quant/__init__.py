"""Quantization: int8 PTQ/QAT running on ONNX Runtime integer kernels, and low-bit weights."""

from torchslim.quant.modules import QuantizedActivation, QuantizedConv2d, QuantizedLinear
from torchslim.quant.observers import Observer, QParams, qparams_from_range
from torchslim.quant.ptq import PTQConfig, ptq_

__all__ = [
    "Observer",
    "PTQConfig",
    "QParams",
    "QuantizedActivation",
    "QuantizedConv2d",
    "QuantizedLinear",
    "ptq_",
    "qparams_from_range",
]
