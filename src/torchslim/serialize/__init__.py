"""Save and load models as an architecture spec (JSON) plus safetensors weights; no pickle."""

from torchslim.serialize.store import load, save

__all__ = ["load", "save"]
