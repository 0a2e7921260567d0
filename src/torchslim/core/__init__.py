"""Core shapes every technique plugs into: config base, registry, Context, layer selection."""

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import TECHNIQUES, HandlerResult, Technique, register_technique, techniques
from torchslim.core.select import LayerFilter, select_layers

__all__ = [
    "TECHNIQUES",
    "Context",
    "HandlerResult",
    "LayerFilter",
    "Technique",
    "TechniqueConfig",
    "register_technique",
    "select_layers",
    "techniques",
]
