"""Graph capture and module-level dataflow queries."""

from torchslim.graph.capture import CapturedGraph, capture

__all__ = ["CapturedGraph", "capture"]
