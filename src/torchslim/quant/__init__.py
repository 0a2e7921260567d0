"""Quantization: int8 PTQ/QAT running on ONNX Runtime integer kernels, and low-bit weights.

Recipe steps: ``quant.ptq``, ``quant.qat``, ``quant.uniform``, ``quant.inq``, ``quant.ttq``,
``quant.binary``. See docs/quant.md.
"""

from torchslim.quant.binary import BinaryConfig, XNORConv2d, XNORLinear, binary_
from torchslim.quant.clipq import ClipQConfig, clipq_
from torchslim.quant.dynamic import DynamicConfig, DynamicQuantizedLinear, dynamic_
from torchslim.quant.inq import INQConfig, inq_
from torchslim.quant.kmeans import KMeansConfig, kmeans_
from torchslim.quant.modules import QuantizedActivation, QuantizedConv2d, QuantizedLinear
from torchslim.quant.observers import Observer, QParams, qparams_from_range
from torchslim.quant.ptq import PTQConfig, ptq_
from torchslim.quant.qat import QATConfig, qat_
from torchslim.quant.ttq import TTQConfig, ttq_
from torchslim.quant.uniform import UniformConfig, uniform_

__all__ = [
    "BinaryConfig",
    "ClipQConfig",
    "DynamicConfig",
    "DynamicQuantizedLinear",
    "INQConfig",
    "KMeansConfig",
    "Observer",
    "PTQConfig",
    "QATConfig",
    "QParams",
    "QuantizedActivation",
    "QuantizedConv2d",
    "QuantizedLinear",
    "TTQConfig",
    "UniformConfig",
    "XNORConv2d",
    "XNORLinear",
    "binary_",
    "clipq_",
    "dynamic_",
    "inq_",
    "kmeans_",
    "ptq_",
    "qat_",
    "qparams_from_range",
    "ttq_",
    "uniform_",
]
