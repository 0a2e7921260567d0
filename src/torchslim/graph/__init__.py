"""Graph capture and module-level dataflow queries; channel-dependency groups for pruning."""

from torchslim.graph.capture import CapturedGraph, capture
from torchslim.graph.dependency import DependencyGraph, Group, ParamSlice, build_dependency_graph

__all__ = ["CapturedGraph", "DependencyGraph", "Group", "ParamSlice", "build_dependency_graph", "capture"]
