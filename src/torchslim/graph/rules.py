"""The table of channel-propagation rules, one per ATen op (keyed by the op itself, ``aten.conv2d``).

Every tensor dimension of every value in the exported graph is a *space* of elements
(channel 0..C-1 of a conv output is one space; the rows of a weight are another). A rule
says which elements of its inputs, outputs and parameters must be removed together
(``b.link``, see :class:`torchslim.graph.elements.ElementLinks`); the dependency graph
unions them. Whatever a rule does not link is *blocked* by the builder: it can never be
removed. So an op without a rule blocks every dimension it touches, and so does an op whose
rule declares a variant it does not handle (``b.unsupported(reason)``) or leaves a tensor
operand with no dimension linked (the rule has not understood it: a ``clamp`` with tensor
bounds under a one-operand rule would otherwise leave the bound's channels behind); all
three are named in the graph's warnings. A mistake in a rule can then only make pruning
more conservative, except for the index maps, which the oracle tests check on toy models
and the zoo.

The rules live by kind, each module registering into :data:`RULES` on import:
:mod:`.elementwise_rules` (pointwise and broadcasting ops, pooling, resampling),
:mod:`.layer_rules` (conv, linear, norms, embedding), :mod:`.shape_rules` (cat, chunk,
split, views, permutes, indexing), :mod:`.reduction_rules` (reductions, softmax, attention,
matmul). :mod:`torchslim.graph.dependency` imports all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import fx

Rule = Callable[[Any, fx.Node], None]
RULES: dict[str, Rule] = {}


def op_key(target: Any) -> str:
    """'aten.conv2d' for an ATen overload, 'getitem' for operator.getitem."""
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(packet)
    return getattr(target, "__name__", str(target))


def rule(*names: str) -> Callable[[Rule], Rule]:
    """Register the decorated ``fn(b, node)`` as the rule of every op in ``names``."""

    def wrap(fn: Rule) -> Rule:
        for name in names:
            if name in RULES:
                raise ValueError(f"pruning rule for {name} is already registered")
            RULES[name] = fn
        return fn

    return wrap


def arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    """Positional argument ``index`` of ``node``, or keyword ``name``."""
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def tensor_args(b: Any, node: fx.Node) -> list[Any]:
    """Every tensor operand of ``node`` (positional and keyword), in order."""
    values = list(node.args) + list(node.kwargs.values())
    return [v for v in values if b.is_tensor(v)]
