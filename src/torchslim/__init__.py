"""torchslim: make trained PyTorch models smaller and faster, and measure it.

The flat public API is loaded lazily so ``import torchslim`` stays fast and starts no heavy
optional dependency (ONNX Runtime, matplotlib, scikit-learn load on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "profile": ("torchslim.profiler", "profile_model"),
    "measure_latency": ("torchslim.profiler", "measure_latency"),
    "compress": ("torchslim.pipeline", "compress"),
    "CompressResult": ("torchslim.pipeline", "CompressResult"),
    "MeasureConfig": ("torchslim.profiler.snapshot", "MeasureConfig"),
    "save": ("torchslim.serialize", "save"),
    "load": ("torchslim.serialize", "load"),
    "create_model": ("torchslim.zoo", "create_model"),
    "load_dataset": ("torchslim.data", "load_dataset"),
    "UserError": ("torchslim.errors", "UserError"),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'torchslim' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
