"""Capture a model's dataflow at module granularity with ``torch.fx.symbolic_trace``.

fx keeps calls to submodules as ``call_module`` nodes, which is what module-level rewrites
(BN folding, layer replacement) need. Fallback when symbolic tracing fails (data-dependent
control flow): the structure of ``nn.Sequential`` containers alone, where consecutive children
feed each other; it finds fewer patterns but never a wrong one. The fallback is named in the
``CapturedGraph.warnings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx, nn


@dataclass
class CapturedGraph:
    """``edges``: (producer module name, consumer module name) where the consumer's only
    input is the producer's output and the producer's output has no other user."""

    method: str
    exclusive_edges: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)


def _fx_edges(model: nn.Module) -> list[tuple[str, str]]:
    traced = fx.symbolic_trace(model)
    edges = []
    for node in traced.graph.nodes:
        if node.op != "call_module" or len(node.all_input_nodes) != 1:
            continue
        (src,) = node.all_input_nodes
        if src.op == "call_module" and len(src.users) == 1:
            edges.append((str(src.target), str(node.target)))
    return edges


def _sequential_edges(model: nn.Module) -> list[tuple[str, str]]:
    edges = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            kids = list(module.named_children())
            for (a, _), (b, _) in zip(kids, kids[1:]):
                prefix = f"{name}." if name else ""
                edges.append((prefix + a, prefix + b))
    return edges


def capture(model: nn.Module, example_inputs: tuple[torch.Tensor, ...] = ()) -> CapturedGraph:
    try:
        return CapturedGraph("fx", _fx_edges(model))
    except Exception as exc:  # fx raises many types on untraceable code
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return CapturedGraph(
            "sequential",
            _sequential_edges(model),
            [f"torch.fx could not trace {type(model).__name__} ({reason}); used nn.Sequential order only"],
        )
