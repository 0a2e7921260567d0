"""Propagation rules of ops that mix elements along a dimension: reductions, softmax,
scaled-dot-product attention and matmul. A mixed (reduced / normalised) dimension is blocked;
a contracted one is linked across both operands and marked inexact.

Registered into :data:`torchslim.graph.rules.RULES`; see that module for the rule contract.
"""

from __future__ import annotations

from typing import Any

from torch import fx

from torchslim.graph.rules import arg, rule


@rule("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.logsumexp")
def _reduce(b: Any, node: fx.Node) -> None:
    """Reduced dims are blocked (removing an element changes the result); the rest follow."""
    x = node.args[0]
    b.keep(x)  # a full reduction links nothing: every element changes the result
    rank = len(b.shape(x))
    dims = arg(node, 1, "dim", None)
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return
    dims = {int(d) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims])}
    keepdim = bool(arg(node, 2, "keepdim", False))
    out_d = 0
    for d in range(rank):
        if d in dims:
            out_d += int(keepdim)
            continue
        b.link(x, d, node, out_d)
        out_d += 1


@rule("aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax")
def _softmax(b: Any, node: fx.Node) -> None:
    """The normalised dim is blocked; the others follow."""
    x = node.args[0]
    b.keep(x)
    rank = len(b.shape(x))
    dim = int(node.args[1]) % rank
    for d in range(rank):
        if d != dim:
            b.link(x, d, node, d)


# ---------------------------------------------------------------- attention and matmul


@rule("aten.scaled_dot_product_attention")
def _sdpa(b: Any, node: fx.Node) -> None:
    """q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev). Heads (leading dims)
    follow; E is blocked unless ``scale`` is explicit (the default 1/sqrt(E) would change)."""
    q, k, v = node.args[:3]
    mask = arg(node, 3, "attn_mask")
    out = b.shape(node)
    rank = len(out)
    for t in (q, k, v):
        shape = b.shape(t)
        for j in range(len(shape) - 2):  # leading (batch, head) dims, right-aligned
            t_dim, o_dim = len(shape) - 3 - j, rank - 3 - j
            if o_dim >= 0 and shape[t_dim] not in (1, out[o_dim]):
                b.unsupported("q, k, v with different head counts (grouped-query attention)")
                return
            if o_dim >= 0 and shape[t_dim] == out[o_dim]:
                b.link(t, t_dim, node, o_dim)
    b.link(q, len(b.shape(q)) - 2, node, rank - 2)
    b.link(k, len(b.shape(k)) - 2, v, len(b.shape(v)) - 2)
    b.link(v, len(b.shape(v)) - 1, node, rank - 1)
    if node.kwargs.get("scale") is not None:
        b.link(q, len(b.shape(q)) - 1, k, len(b.shape(k)) - 1)
        b.inexact(q, len(b.shape(q)) - 1)
    if b.is_tensor(mask):
        ms = b.shape(mask)
        if len(ms) >= 2 and ms[-2] == b.shape(q)[-2]:
            b.link(mask, len(ms) - 2, q, len(b.shape(q)) - 2)
        if len(ms) >= 1 and ms[-1] == b.shape(k)[-2]:
            b.link(mask, len(ms) - 1, k, len(b.shape(k)) - 2)
    qs, ks = b.shape(q), b.shape(k)
    b.record_cost(node, [(q, d) for d in range(len(qs))] + [(k, len(ks) - 2)])
    b.record_cost(node, [(node, d) for d in range(rank)] + [(k, len(ks) - 2)])


@rule("aten.matmul", "aten.bmm", "aten.mm")
def _matmul(b: Any, node: fx.Node) -> None:
    """(..., n, k) @ (..., k, m): the contracted k is linked and inexact."""
    x, y = node.args[:2]
    xs, ys, out = b.shape(x), b.shape(y), b.shape(node)
    if len(xs) < 2 or len(ys) < 2:
        b.unsupported("1-D operand")
        return
    b.link(x, len(xs) - 2, node, len(out) - 2)
    b.link(y, len(ys) - 1, node, len(out) - 1)
    b.link(x, len(xs) - 1, y, len(ys) - 2)
    b.inexact(x, len(xs) - 1)
    for t, shape in ((x, xs), (y, ys)):
        for j in range(3, len(shape) + 1):
            if shape[-j] == out[-j]:
                b.link(t, len(shape) - j, node, len(out) - j)
    b.record_cost(node, [(node, d) for d in range(len(out))] + [(x, len(xs) - 1)])
