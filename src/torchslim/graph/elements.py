"""What a propagation rule sees and records: :class:`ElementLinks`.

Every dimension of every tensor value in the exported graph owns a block of element ids
(its *space*). Rules (:mod:`torchslim.graph.rules`) link elements that must be removed
together, mark dims whose removal is inexact, record MAC costs, conv input spaces and head
splits; the builder in :mod:`torchslim.graph.dependency` runs them node by node and blocks
whatever a node's rule left unlinked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import fx

from torchslim.graph.export import module_path


def tensor_values(node: fx.Node) -> list[tuple[Any, torch.Size]]:
    """(space key, shape) of each tensor ``node`` produces: its name, or (name, i) per tuple item."""
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [(node.name, val.shape)]
    if isinstance(val, (list, tuple)):
        return [((node.name, i), v.shape) for i, v in enumerate(val) if isinstance(v, torch.Tensor)]
    return []


class ElementLinks:
    """Element ids per (value, dim), and the links, blocks and notes the rules record.

    Per node: :meth:`begin`, the rule, then :meth:`end` (or :meth:`block_all` when the rule
    is missing or declared the node :meth:`unsupported`).
    """

    def __init__(self) -> None:
        self.spaces: dict[Any, list[tuple[int, int]]] = {}
        self.tuple_outputs: dict[str, list[Any]] = {}
        self.total = 0
        self.edges_a: list[np.ndarray] = []
        self.edges_b: list[np.ndarray] = []
        self.blocked: list[np.ndarray] = []
        self.inexact_ids: list[np.ndarray] = []
        self.notes: list[tuple[str, str, str, np.ndarray]] = []  # (op, module, reason, ids)
        self.roles: dict[tuple[str, int], str] = {}
        self.costs: list[list[tuple[Any, int]]] = []
        self.convs: dict[str, tuple[Any, int]] = {}
        self.heads: list[tuple[str, Any, int, int]] = []
        self.problem: str | None = None
        self._touched: set[tuple[Any, int]] = set()
        self._kept: set[Any] = set()
        self._site = ("", "")

    # ------------------------------------------------------------ spaces

    def add_node(self, node: fx.Node) -> None:
        """Allocate the spaces of every tensor ``node`` produces."""
        values = tensor_values(node)
        for key, shape in values:
            dims = []
            for size in shape:
                dims.append((self.total, int(size)))
                self.total += int(size)
            self.spaces[key] = dims
        if values and isinstance(values[0][0], tuple):
            self.tuple_outputs[node.name] = [key for key, _ in values]

    @staticmethod
    def key(v: Any) -> Any:
        return v.name if isinstance(v, fx.Node) else v

    def is_tensor(self, v: Any) -> bool:
        return (isinstance(v, fx.Node) or isinstance(v, tuple)) and self.key(v) in self.spaces

    def shape(self, v: Any) -> list[int]:
        return [size for _, size in self.spaces[self.key(v)]]

    def outputs(self, node: fx.Node) -> list[Any]:
        """The tensor outputs of ``node``: itself, or every (name, i) of a tuple (any length)."""
        if node.name in self.spaces:
            return [node]
        return list(self.tuple_outputs.get(node.name, []))

    def ids(self, v: Any, d: int) -> np.ndarray:
        offset, size = self.spaces[self.key(v)][d]
        return np.arange(offset, offset + size)

    # ------------------------------------------------------------ what rules call

    def link(self, va: Any, da: int, vb: Any, db: int, ia: np.ndarray | None = None,
             ib: np.ndarray | None = None, role_b: str | None = None) -> None:
        """Elements ``ia`` of (va, da) go with elements ``ib`` of (vb, db) (all, in order, if None)."""
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
        """Removing elements of (v, d) changes the others (shared statistics, contraction)."""
        self.inexact_ids.append(self.ids(v, d))

    def keep(self, v: Any) -> None:
        """The rule has read operand ``v``: its unlinked dims are blocked on purpose."""
        self._kept.add(self.key(v))

    def keep_dim(self, v: Any, d: int, reason: str) -> None:
        """Dim ``d`` of ``v`` stays by design; named in a warning if it would carry a group."""
        self.keep(v)
        if self.shape(v)[d] > 1:
            self.notes.append((*self._site, reason, self.ids(v, d)))

    def unsupported(self, reason: str) -> None:
        """The rule does not handle this variant of its op: the node blocks everything it touches."""
        self.problem = reason

    def record_cost(self, node: fx.Node, factors: list[tuple[Any, int]]) -> None:
        self.costs.append([(self.key(v), d) for v, d in factors])

    def record_conv(self, node: fx.Node, x: Any, w: Any) -> None:
        self.convs[self.key(w)] = (self.key(x), 1)

    def record_heads(self, node: fx.Node, dim: int) -> None:
        self.heads.append((module_path(node), node.name, dim, self.shape(node)[dim]))

    # ------------------------------------------------------------ what the builder calls

    def begin(self, op: str = "", where: str = "") -> None:
        """Start a node: op ``op`` in module ``where`` (for warnings)."""
        self._touched, self._kept, self.problem, self._site = set(), set(), None, (op, where)

    def ignored_operand(self, operands: Sequence[Any]) -> int | None:
        """Position of the first tensor operand (with a dim of size > 1) of which the rule
        linked no dim at all: it did not read it (e.g. a tensor ``clamp`` bound); or None."""
        for i, v in enumerate(operands):
            key, shape = self.key(v), self.shape(v)
            if any(size > 1 for size in shape) and key not in self._kept \
                    and not any((key, d) in self._touched for d in range(len(shape))):
                return i
        return None

    def end(self, values: Sequence[Any]) -> None:
        """Block every dim of ``values`` the rule did not link."""
        for v in values:
            for d in range(len(self.spaces[self.key(v)])):
                if (self.key(v), d) not in self._touched:
                    self.blocked.append(self.ids(v, d))

    def block_all(self, values: Sequence[Any]) -> None:
        """Block every dim of ``values`` (a node no rule understands)."""
        for v in values:
            for d in range(len(self.spaces[self.key(v)])):
                self.blocked.append(self.ids(v, d))
