"""Profiler: params, MACs/FLOPs (per layer), peak activations, size, latency, ONNX export.

Named ``profiler`` rather than ``profile`` because ``torchslim.profile`` is the top-level
function that wraps ``profile_model``. Importing this package loads neither onnx nor
onnxruntime; they load when an export or an ORT measurement first needs them.
"""

from torchslim.profiler.analyze import profile_model
from torchslim.profiler.latency import RUNTIMES, LatencyStats, measure_latency
from torchslim.profiler.onnx_export import export_onnx, onnx_provenance, onnx_session
from torchslim.profiler.stats import LayerStats, ModelStats
from torchslim.profiler.weights import count_params, safetensors_size_bytes

__all__ = [
    "RUNTIMES",
    "LatencyStats",
    "LayerStats",
    "ModelStats",
    "count_params",
    "export_onnx",
    "measure_latency",
    "onnx_provenance",
    "onnx_session",
    "profile_model",
    "safetensors_size_bytes",
]
