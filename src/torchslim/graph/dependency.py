"""Channel-dependency groups: every (parameter, dim, indices) slice that must go together.

Built in three moves (Torch-Pruning's decomposition, Fang et al. 2023, "DepGraph: Towards
Any Structural Pruning", with a different engine underneath):

1. capture the model with ``torch.export`` (:mod:`torchslim.graph.export`; in a technique,
   the Context's one cached capture, ``ctx.dependency_graph(model)``);
2. give every dimension of every tensor value (activations, parameters, buffers) a block of
   element ids (:mod:`torchslim.graph.elements`), and let the per-op rules of
   :mod:`torchslim.graph.rules` link elements that must be removed together; elements a rule
   does not link, user inputs, outputs and ops no rule understands are *blocked*;
3. connected components of the link graph (``scipy.sparse.csgraph``) are the removable units
   ("channels"); a component touching a blocked element is unprunable. Components touching
   the same set of (parameter, dim) pairs form one :class:`Group` (:mod:`torchslim.graph.groups`).

Element-level components make every index map (concat offsets, flatten C x H x W, channel
shuffle, heads) the same code path, and cost one sparse connected-components call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

# Importing a rule module registers its rules in RULES.
import torchslim.graph.elementwise_rules  # noqa: F401
import torchslim.graph.layer_rules  # noqa: F401
import torchslim.graph.reduction_rules  # noqa: F401
import torchslim.graph.shape_rules  # noqa: F401
from torchslim.graph.elements import ElementLinks
from torchslim.graph.export import ExportedGraph, capture_export, module_path
from torchslim.graph.groups import Group, ParamSlice, make_groups
from torchslim.graph.rules import RULES, op_key

__all__ = ["DependencyGraph", "Group", "ParamSlice", "build_dependency_graph"]


@dataclass
class DependencyGraph:
    """Element-level dependency analysis of one model on one input shape.

    ``labels[e]``: component of element ``e``; ``groups``: prunable groups; ``warnings``:
    one line per op the rules do not understand (no rule, an unsupported variant, or a
    tensor operand its rule ignores) and per op that keeps a group's dim by design; the
    channels through it are left alone.
    """

    exported: ExportedGraph
    spaces: dict[Any, list[tuple[int, int]]]
    labels: np.ndarray
    blocked: np.ndarray
    groups: list[Group]
    costs: list[list[tuple[Any, int]]]
    convs: dict[str, tuple[Any, int]]
    heads: list[tuple[str, Any, int, int]]
    param_spaces: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def output_shape(self) -> torch.Size | None:
        """Shape of the model's first output, as captured."""
        for node in self.exported.graph.nodes:
            if node.op == "output":
                first = _flatten(node.args)[0] if _flatten(node.args) else None
                val = first.meta.get("val") if isinstance(first, fx.Node) else None
                return val.shape if isinstance(val, torch.Tensor) else None
        return None

    @property
    def num_components(self) -> int:
        return int(self.blocked.shape[0])

    def remove_mask(self, removed: dict[int, Sequence[int]]) -> np.ndarray:
        """Component mask from ``{group id: channel indices to remove}``."""
        mask = np.zeros(self.num_components, dtype=bool)
        by_id = {g.id: g for g in self.groups}
        for gid, channels in removed.items():
            mask[by_id[gid].components[np.asarray(list(channels), dtype=np.int64)]] = True
        return mask

    def kept_size(self, key: Any, dim: int, mask: np.ndarray) -> int:
        offset, size = self.spaces[key][dim]
        return int(size - np.count_nonzero(mask[self.labels[offset:offset + size]]))

    def keep_index(self, key: Any, dim: int, mask: np.ndarray) -> np.ndarray:
        offset, size = self.spaces[key][dim]
        return np.flatnonzero(~mask[self.labels[offset:offset + size]])

    def params_removed(self, mask: np.ndarray) -> int:
        """Parameter elements (not buffers) that removing ``mask`` deletes."""
        removed = 0
        for pname, key in self.param_spaces.items():
            if pname in self.exported.buffers:
                continue
            sizes = [size for _, size in self.spaces[key]]
            kept = [self.kept_size(key, d, mask) for d in range(len(sizes))]
            removed += int(np.prod(sizes)) - int(np.prod(kept))
        return removed

    def macs(self, mask: np.ndarray | None = None) -> int:
        """MACs of conv / linear / attention / matmul ops after removing ``mask`` (or none)."""
        if mask is None:
            mask = np.zeros(self.num_components, dtype=bool)
        total = 0
        for factors in self.costs:
            prod = 1
            for key, d in factors:
                prod *= self.kept_size(key, d, mask)
            total += prod
        return total


def _run_rules(b: ElementLinks, exported: ExportedGraph) -> dict[tuple[str, str], set[str]]:
    """Apply every node's rule; returns ``{(op, reason): modules}`` of nodes not understood."""
    nodes = list(exported.graph.nodes)
    for node in nodes:
        b.add_node(node)
    problems: dict[tuple[str, str], set[str]] = {}
    for node in nodes:
        if node.op == "placeholder":
            if node.name in b.spaces and (node.name not in exported.param_of or not node.users):
                b.begin()
                b.end([node])  # user inputs, lifted constants and unused parameters keep their shape
            continue
        if node.op == "output":
            b.begin()
            b.end([a for a in _flatten(node.args) if isinstance(a, fx.Node) and b.is_tensor(a)])
            continue
        if node.op != "call_function":
            continue
        key, where = op_key(node.target), module_path(node) or "<root>"
        inputs = [a for a in _flatten((node.args, node.kwargs)) if isinstance(a, fx.Node) and b.is_tensor(a)]
        values = inputs + b.outputs(node)
        if key == "getitem" and isinstance(node.args[0], fx.Node):
            values.append((node.args[0].name, node.args[1]))
        values = [v for v in values if b.is_tensor(v)]
        b.begin(key, where)
        rule = RULES.get(key)
        if rule is None:
            b.unsupported("no pruning rule")
        else:
            rule(b, node)
            ignored = b.ignored_operand(inputs) if b.problem is None else None
            if ignored is not None:
                b.unsupported(f"its rule does not read tensor operand {ignored}")
        if b.problem is None:
            b.end(values)
        else:
            problems.setdefault((key, b.problem), set()).add(where)
            b.block_all(values)
    return problems


def build_dependency_graph(model: nn.Module, example_inputs: Sequence[Any],
                           exported: ExportedGraph | None = None) -> DependencyGraph:
    """Build ``model``'s channel-dependency groups from its export on ``example_inputs``
    (``exported``: a capture already made; techniques use ``ctx.dependency_graph(model)``)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if exported is None:
        exported = capture_export(model, tuple(example_inputs))
    b = ElementLinks()
    problems = _run_rules(b, exported)

    n = b.total
    ea = np.concatenate(b.edges_a) if b.edges_a else np.zeros(0, dtype=np.int64)
    eb = np.concatenate(b.edges_b) if b.edges_b else np.zeros(0, dtype=np.int64)
    adj = coo_matrix((np.ones(len(ea), dtype=np.int8), (ea, eb)), shape=(n, n))
    ncomp, labels = connected_components(adj, directed=False)
    blocked = np.zeros(ncomp, dtype=bool)
    for ids in b.blocked:
        blocked[labels[ids]] = True
    inexact = np.zeros(ncomp, dtype=bool)
    for ids in b.inexact_ids:
        inexact[labels[ids]] = True

    param_spaces = {exported.param_of[k]: k for k in b.spaces if isinstance(k, str) and k in exported.param_of}
    groups, touches_params = make_groups(b, exported, labels, blocked, inexact, param_spaces)
    for op, where, reason, ids in b.notes:  # a dim kept by design, named where it carries channels
        if touches_params[labels[ids]].any():
            problems.setdefault((op, reason), set()).add(where)
    warnings = [f"{op} (in {', '.join(sorted(where)[:3])}): {reason}, channels through it are kept"
                for (op, reason), where in sorted(problems.items())]
    return DependencyGraph(exported, b.spaces, labels, blocked, groups, b.costs, b.convs, b.heads,
                           param_spaces, warnings)


def _flatten(obj: Any) -> list[Any]:
    if isinstance(obj, (list, tuple)):
        return [x for item in obj for x in _flatten(item)]
    if isinstance(obj, dict):
        return [x for item in obj.values() for x in _flatten(item)]
    return [obj]
