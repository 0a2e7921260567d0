"""Channel-dependency groups: every (parameter, dim, indices) slice that must go together.

Built in three moves (Torch-Pruning's decomposition, Fang et al. 2023, "DepGraph: Towards
Any Structural Pruning", with a different engine underneath):

1. capture the model with ``torch.export`` (:mod:`torchslim.graph.export`);
2. give every dimension of every tensor value (activations, parameters, buffers) a block of
   element ids, and let the per-op rules of :mod:`torchslim.graph.rules` link elements that
   must be removed together; elements a rule does not link, user inputs, outputs and ops
   without a rule are *blocked*;
3. connected components of the link graph (``scipy.sparse.csgraph``) are the removable units
   ("channels"); a component touching a blocked element is unprunable. Components touching
   the same set of (parameter, dim) pairs form one :class:`Group` (e.g. the 64 channels of a
   residual stage), which importance criteria rank and ratios apply to.

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

from torchslim.graph.export import ExportedGraph, capture_export, module_path
from torchslim.graph.rules import RULES, op_key

Value = Any  # an fx.Node or (fx.Node name, output index) for tuple outputs


@dataclass
class ParamSlice:
    """Indices ``index`` along ``dim`` of state-dict tensor ``param``; ``channel[i]`` is the
    group channel that ``index[i]`` belongs to. ``role``: out (a filter / row of a producer),
    in (a consumer's input column), bias, affine (norm scale / shift / statistics), free."""

    param: str
    dim: int
    role: str
    index: np.ndarray
    channel: np.ndarray


@dataclass
class Group:
    """``channels`` removable units that share the same parameter slices.

    ``exact``: removing a channel whose consumers ignore it leaves the output unchanged
    (false when a normalisation or contraction mixes the channels, e.g. LayerNorm).
    """

    id: int
    channels: int
    components: np.ndarray
    slices: list[ParamSlice]
    exact: bool
    name: str = ""

    @property
    def modules(self) -> list[str]:
        return sorted({s.param.rpartition(".")[0] for s in self.slices})

    def producers(self) -> list[str]:
        return sorted({s.param.rpartition(".")[0] for s in self.slices if s.role == "out"})

    def describe(self) -> str:
        names = self.producers() or self.modules
        more = f" +{len(names) - 3}" if len(names) > 3 else ""
        return f"{', '.join(names[:3])}{more} ({self.channels} ch)"


class _Builder:
    """Allocates element ids per (value, dim) and collects links and blocked elements."""

    def __init__(self) -> None:
        self.spaces: dict[Any, list[tuple[int, int]]] = {}
        self.total = 0
        self.edges_a: list[np.ndarray] = []
        self.edges_b: list[np.ndarray] = []
        self.blocked: list[np.ndarray] = []
        self.inexact_ids: list[np.ndarray] = []
        self.roles: dict[tuple[str, int], str] = {}
        self.costs: list[list[tuple[Any, int]]] = []
        self.convs: dict[str, tuple[Any, int]] = {}
        self.heads: list[tuple[str, Any, int, int]] = []
        self._touched: set[tuple[Any, int]] = set()

    def add(self, key: Any, shape: Sequence[int]) -> None:
        dims = []
        for size in shape:
            dims.append((self.total, int(size)))
            self.total += int(size)
        self.spaces[key] = dims

    @staticmethod
    def key(v: Any) -> Any:
        return v.name if isinstance(v, fx.Node) else v

    def is_tensor(self, v: Any) -> bool:
        return (isinstance(v, fx.Node) or isinstance(v, tuple)) and self.key(v) in self.spaces

    def shape(self, v: Any) -> list[int]:
        return [size for _, size in self.spaces[self.key(v)]]

    def outputs(self, node: fx.Node) -> list[Any]:
        if node.name in self.spaces:
            return [node]
        return [(node.name, i) for i in range(64) if (node.name, i) in self.spaces]

    def ids(self, v: Any, d: int) -> np.ndarray:
        offset, size = self.spaces[self.key(v)][d]
        return np.arange(offset, offset + size)

    def link(self, va: Any, da: int, vb: Any, db: int, ia: np.ndarray | None = None,
             ib: np.ndarray | None = None, role_b: str | None = None) -> None:
        a, b = self.ids(va, da), self.ids(vb, db)
        if ia is None:
            if len(a) != len(b):
                return  # sizes differ: leave both blocked rather than guess
            ia = ib = np.arange(len(a))
        self.edges_a.append(a[ia])
        self.edges_b.append(b[ib])
        self._touched.update({(self.key(va), da), (self.key(vb), db)})
        if role_b is not None and isinstance(vb, fx.Node) and vb.op == "placeholder":
            self.roles.setdefault((vb.name, db), role_b)

    def inexact(self, v: Any, d: int) -> None:
        self.inexact_ids.append(self.ids(v, d))

    def record_cost(self, node: fx.Node, factors: list[tuple[Any, int]]) -> None:
        self.costs.append([(self.key(v), d) for v, d in factors])

    def record_conv(self, node: fx.Node, x: Any, w: Any) -> None:
        self.convs[self.key(w)] = (self.key(x), 1)

    def record_heads(self, node: fx.Node, dim: int) -> None:
        self.heads.append((module_path(node), node.name, dim, self.shape(node)[dim]))

    def begin(self) -> None:
        self._touched = set()

    def end(self, values: list[Any]) -> None:
        """Block every dim of ``values`` the rule did not link."""
        for v in values:
            for d in range(len(self.spaces[self.key(v)])):
                if (self.key(v), d) not in self._touched:
                    self.blocked.append(self.ids(v, d))


def _tensor_values(node: fx.Node) -> list[tuple[Any, torch.Size]]:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [(node.name, val.shape)]
    if isinstance(val, (list, tuple)):
        return [((node.name, i), v.shape) for i, v in enumerate(val) if isinstance(v, torch.Tensor)]
    return []


@dataclass
class DependencyGraph:
    """Element-level dependency analysis of one model on one input shape.

    ``labels[e]``: component of element ``e``; ``groups``: prunable groups; ``warnings``:
    one line per op without a rule (its channels are left alone).
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


def build_dependency_graph(model: nn.Module, example_inputs: Sequence[Any],
                           exported: ExportedGraph | None = None) -> DependencyGraph:
    """Build ``model``'s channel-dependency groups from its export on ``example_inputs``
    (``exported``: a capture already made, e.g. ``ctx.exported(model)``)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if exported is None:
        exported = capture_export(model, tuple(example_inputs))
    b = _Builder()
    nodes = list(exported.graph.nodes)
    for node in nodes:
        for key, shape in _tensor_values(node):
            b.add(key, shape)
    unknown: dict[str, set[str]] = {}
    for node in nodes:
        if node.op == "placeholder":
            if node.name in b.spaces and (node.name not in exported.param_of or not node.users):
                b.begin()
                b.end([node])  # user inputs, lifted constants and unused parameters keep their shape
            continue
        if node.op == "output":
            outs = [a for a in _flatten(node.args) if isinstance(a, fx.Node) and b.is_tensor(a)]
            b.begin()
            b.end(outs)
            continue
        if node.op != "call_function":
            continue
        key = op_key(node.target)
        inputs = [a for a in _flatten((node.args, node.kwargs)) if isinstance(a, fx.Node) and b.is_tensor(a)]
        values = inputs + b.outputs(node)
        if key == "getitem" and isinstance(node.args[0], fx.Node):
            values.append((node.args[0].name, node.args[1]))
        b.begin()
        rule = RULES.get(key)
        if rule is None:
            unknown.setdefault(key, set()).add(module_path(node) or "<root>")
        else:
            rule(b, node)
        b.end([v for v in values if b.is_tensor(v)])

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
    groups = _make_groups(b, exported, labels, blocked, inexact, param_spaces)
    warnings = [f"{op} (in {', '.join(sorted(where)[:3])}): no pruning rule, channels through it are kept"
                for op, where in sorted(unknown.items())]
    return DependencyGraph(exported, b.spaces, labels, blocked, groups, b.costs, b.convs, b.heads,
                           param_spaces, warnings)


def _flatten(obj: Any) -> list[Any]:
    if isinstance(obj, (list, tuple)):
        return [x for item in obj for x in _flatten(item)]
    if isinstance(obj, dict):
        return [x for item in obj.values() for x in _flatten(item)]
    return [obj]


def _make_groups(b: _Builder, exported: ExportedGraph, labels: np.ndarray, blocked: np.ndarray,
                 inexact: np.ndarray, param_spaces: dict[str, Any]) -> list[Group]:
    """Components touching the same (param, dim) set, unblocked, with parameters -> Group."""
    ncomp = len(blocked)
    rng = np.random.default_rng(0)
    signature = np.zeros(ncomp, dtype=np.uint64)
    touches = np.zeros(ncomp, dtype=bool)
    pds = []  # (param name, dim, placeholder key)
    for pname, key in sorted(param_spaces.items()):
        for d, (offset, size) in enumerate(b.spaces[key]):
            comps = np.unique(labels[offset:offset + size])
            signature[comps] += rng.integers(1, 2**63, dtype=np.uint64)
            touches[comps] = True
            pds.append((pname, d, key))
    candidate = touches & ~blocked
    sigs, group_of = np.unique(signature[candidate], return_inverse=True)
    comp_ids = np.flatnonzero(candidate)
    group_index = np.full(ncomp, -1, dtype=np.int64)
    group_index[comp_ids] = group_of
    channel_of = np.full(ncomp, -1, dtype=np.int64)
    groups: list[Group] = []
    for g in range(len(sigs)):
        members = comp_ids[group_of == g]
        channel_of[members] = np.arange(len(members))
        groups.append(Group(g, len(members), members, [], bool(not inexact[members].any())))
    for pname, d, key in pds:
        offset, size = b.spaces[key][d]
        lab = labels[offset:offset + size]
        gidx = group_index[lab]
        for g in np.unique(gidx[gidx >= 0]):
            pos = np.flatnonzero(gidx == g)
            groups[g].slices.append(ParamSlice(pname, d, b.roles.get((key, d), "free"), pos, channel_of[lab[pos]]))
    # Order groups by where their first parameter appears (readable reports, stable ids).
    order = {name: i for i, name in enumerate(exported.param_of.values())}
    groups.sort(key=lambda g: min(order.get(s.param, 0) for s in g.slices))
    seen: dict[str, int] = {}
    for i, g in enumerate(groups):
        g.id = i
        producers = sorted({s.param.rpartition(".")[0] for s in g.slices if s.role == "out"},
                           key=lambda m: order.get(f"{m}.weight" if m else "weight", 0))
        base = (producers or g.modules or ["<root>"])[0] or "<root>"
        seen[base] = seen.get(base, 0) + 1
        g.name = base if seen[base] == 1 else f"{base}#{seen[base]}"
    return groups
