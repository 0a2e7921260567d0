"""The one capture (torch.export) and its views: module-level dataflow, channel-dependency groups."""

from torchslim.graph.dependency import DependencyGraph, Group, ParamSlice, build_dependency_graph
from torchslim.graph.export import ExportedGraph, capture_export
from torchslim.graph.modules import ModuleGraph, Node, module_graph

__all__ = [
    "DependencyGraph",
    "ExportedGraph",
    "Group",
    "ModuleGraph",
    "Node",
    "ParamSlice",
    "build_dependency_graph",
    "capture_export",
    "module_graph",
]
