"""Module-level dataflow of a model, derived from its ``torch.export`` capture.

Every ATen node of the exported graph records the modules it ran in
(``node.meta["nn_module_stack"]``, innermost last). Grouping the nodes by that record gives
the view module-level rewrites need (BN folding, int8 placement):

- a **call** node per call of a *leaf* module (one without submodules): a contiguous run of
  ATen nodes whose innermost module is that leaf. A module called twice is two calls
  (``relu`` and ``relu@1``, the suffix torch.export itself puts on the stack entry);
- an **op** node per ATen op outside leaf modules (a residual ``add`` in a block's forward,
  ``torch.cat``, ``F.relu``, ``x.view``), named ``<scope>/<op>`` after the module whose
  forward ran it (``layer1.0/add``; ops of the root's forward are just ``add``);
- an **input** node per user input and one **output** node;
- ``inputs`` / ``users`` between them: node B uses node A when an ATen node of B reads a
  value produced by an ATen node of A. Parameters, buffers and constants are not nodes;
  the state-dict names a node reads are in ``params``.

Modules that run no ATen op (``nn.Identity``) do not appear: their input flows straight to
their users. A second op of the same kind in one scope is ``@1``, ``@2`` ... (``view@1``).

Hand-written: torch.export has no module-level view. ``torch.fx.symbolic_trace`` has one
(``call_module`` nodes), but it is a second, shape-free capture of the model; deriving the
view from the Context's one capture keeps every technique on the same graph.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import fx, nn

from torchslim.graph.export import ExportedGraph

NodeKind = Literal["input", "call", "op", "output"]


@dataclass(eq=False)
class Node:
    """One node of the module graph (compared by identity).

    ``target``: the module's qualified name (call), the ATen op, e.g. ``"aten.add.Tensor"``
    (op), the placeholder name (input) or ``"output"``. ``call``: 0 for a module's first
    call, 1 for its second ... ``scope``: qualified name of the module whose forward ran the
    node ('' for the root). ``aten``: the node's ATen nodes in graph order.
    """

    kind: NodeKind
    name: str
    target: str
    call: int = 0
    scope: str = ""
    aten: list[fx.Node] = field(default_factory=list)
    inputs: list[Node] = field(default_factory=list)
    users: list[Node] = field(default_factory=list)
    params: list[str] = field(default_factory=list)

    @property
    def op(self) -> str:
        """Short ATen op name of an op node (``"add"``, ``"view"``, ``"getitem"``), else ''."""
        return _short_name(self.aten[0].target) if self.kind == "op" else ""

    def __repr__(self) -> str:
        return f"Node({self.kind} {self.name})"


@dataclass
class ModuleGraph:
    """The nodes of a model in execution order (inputs first, output last)."""

    nodes: list[Node]

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "input"]

    @property
    def output(self) -> Node:
        return self.nodes[-1]

    def calls(self, module: str) -> list[Node]:
        """Every call of the leaf module named ``module`` (empty if it never runs an op)."""
        return [n for n in self.nodes if n.kind == "call" and n.target == module]

    def call_counts(self) -> Counter[str]:
        return Counter(n.target for n in self.nodes if n.kind == "call")

    def edges(self) -> list[tuple[str, str]]:
        """(producer name, consumer name) of every dataflow edge, in execution order."""
        return [(src.name, node.name) for node in self.nodes for src in node.inputs]

    def exclusive_edges(self) -> list[tuple[str, str]]:
        """(producer module, consumer module) where the consumer's only input is the producer's
        output and nothing else reads it. Both must be called exactly once: rewriting a module
        that runs twice (folding a BN into a shared conv) would change its other call."""
        counts = self.call_counts()
        edges = []
        for node in self.nodes:
            if node.kind != "call" or counts[node.target] != 1 or len(node.inputs) != 1:
                continue
            (src,) = node.inputs
            if src.kind == "call" and counts[src.target] == 1 and src.users == [node]:
                edges.append((src.target, node.target))
        return edges


def _short_name(target: Any) -> str:
    packet = getattr(target, "overloadpacket", target)
    return str(getattr(packet, "__name__", packet))


def _innermost(node: fx.Node) -> tuple[str, str]:
    """(stack key, module path) of the innermost module ``node`` ran in; ('', '') for the root."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    key, (path, _) = list(stack.items())[-1]
    return str(key), str(path)


def module_graph(model: nn.Module, exported: ExportedGraph) -> ModuleGraph:
    """The module-level dataflow of ``model`` from its capture ``exported`` (see module doc)."""
    leaves = {name for name, module in model.named_modules() if next(module.children(), None) is None}
    owner: dict[fx.Node, Node] = {}
    nodes: list[Node] = []
    calls: Counter[str] = Counter()
    ops: Counter[tuple[str, str]] = Counter()
    current: tuple[str, Node] | None = None  # (stack key, node) of the call being extended
    for fx_node in exported.graph.nodes:
        if fx_node.op == "placeholder":
            if fx_node.name in exported.user_inputs:
                owner[fx_node] = Node("input", fx_node.name, fx_node.name)
                nodes.append(owner[fx_node])
            continue
        if fx_node.op == "output":
            out = Node("output", "output", "output")
            _connect(out, fx_node, owner, exported)
            nodes.append(out)
            continue
        if fx_node.op != "call_function":
            continue
        key, path = _innermost(fx_node)
        if path in leaves:
            if current is None or current[0] != key or current[1].target != path:
                index = calls[path]
                calls[path] += 1
                current = (key, Node("call", path if index == 0 else f"{path}@{index}", path, call=index,
                                     scope=path))
                nodes.append(current[1])
            node = current[1]
        else:
            base = _short_name(fx_node.target)
            index = ops[(path, base)]
            ops[(path, base)] += 1
            name = base if index == 0 else f"{base}@{index}"
            node = Node("op", f"{path}/{name}" if path else name, str(fx_node.target), scope=path)
            nodes.append(node)
            current = None
        node.aten.append(fx_node)
        owner[fx_node] = node
        _connect(node, fx_node, owner, exported)
    return ModuleGraph(nodes)


def _connect(node: Node, fx_node: fx.Node, owner: dict[fx.Node, Node], exported: ExportedGraph) -> None:
    """Link ``node`` to the producers of ``fx_node``'s inputs (parameters go to ``params``)."""
    for arg in fx_node.all_input_nodes:
        if arg.op == "placeholder" and arg.name not in exported.user_inputs:
            name = exported.param_of.get(arg.name)
            if name is not None and name not in node.params:
                node.params.append(name)
            continue
        src = owner.get(arg)
        if src is None or src is node:
            continue
        if src not in node.inputs:
            node.inputs.append(src)
        if node not in src.users:
            src.users.append(node)
