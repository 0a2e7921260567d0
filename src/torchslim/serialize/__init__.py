"""Save and load models as an architecture spec (JSON) plus safetensors weights; no pickle."""

from torchslim.serialize.store import load, read_spec, save

__all__ = ["load", "read_spec", "save"]
