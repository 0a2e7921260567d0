"""Propagation rules of shape ops: cat / chunk offsets, split and unbind, permutes, views that
merge or split dimensions (flatten into Linear, channel shuffle, attention heads), select and
slice.

Index maps that are not the identity:
- ``cat`` / ``chunk``: offsets into the concatenated dimension; ``chunk`` also links the
  i-th element of every chunk (chunk sizes are recomputed from the total at run time, so
  they must stay equal); ``split`` / ``split_with_sizes`` / ``unbind`` keep the split
  dimension (its sizes are constants of the model's code);
- views that *merge* dims (flatten C x H x W into a Linear): element ``c*HW + s`` follows
  channel ``c`` (the first factor); the other factors are blocked;
- views that *split* a dim into (A, B): element ``a*B + b`` follows ``b`` (channel
  shuffle, GroupNorm-style) - or ``a`` when the split feeds attention (whole heads).

Registered into :data:`torchslim.graph.rules.RULES`; see that module for the rule contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import fx

from torchslim.graph.rules import arg, op_key, rule


@rule("aten.cat", "aten.concat")
def _cat(b: Any, node: fx.Node) -> None:
    tensors = [t for t in node.args[0] if b.is_tensor(t)]
    out = b.shape(node)
    dim = int(arg(node, 1, "dim", 0)) % len(out)
    offset = 0
    for t in tensors:
        shape = b.shape(t)
        if len(shape) != len(out):
            b.unsupported("operands of different rank (legacy empty tensors)")
            return
        for d in range(len(out)):
            if d != dim:
                b.link(t, d, node, d)
        b.link(t, dim, node, dim, np.arange(shape[dim]), offset + np.arange(shape[dim]))
        offset += shape[dim]


@rule("aten.chunk")
def _chunk(b: Any, node: fx.Node) -> None:
    x = node.args[0]
    shape = b.shape(x)
    dim = int(arg(node, 2, "dim", 0)) % len(shape)
    outs = b.outputs(node)
    sizes = [b.shape(o)[dim] for o in outs]
    if len(set(sizes)) != 1:  # an uneven last chunk: sizes would shift after pruning
        b.unsupported("uneven chunks")
        return
    offset = 0
    for o in outs:
        for d in range(len(shape)):
            if d != dim:
                b.link(x, d, o, d)
        b.link(x, dim, o, dim, offset + np.arange(sizes[0]), np.arange(sizes[0]))
        b.link(o, dim, outs[0], dim)
        offset += sizes[0]


@rule("aten.split", "aten.split_with_sizes")
def _split(b: Any, node: fx.Node) -> None:
    """Pieces of sizes fixed in the model's code: the split dim stays, the others follow."""
    x = node.args[0]
    rank = len(b.shape(x))
    dim = int(arg(node, 2, "dim", 0)) % rank
    for o in b.outputs(node):
        for d in range(rank):
            if d != dim:
                b.link(x, d, o, d)
    b.keep_dim(x, dim, f"split along dim {dim} into pieces of fixed size")


@rule("aten.unbind")
def _unbind(b: Any, node: fx.Node) -> None:
    """Like ``select`` at every index of ``dim``: the other dims follow, ``dim`` stays."""
    x = node.args[0]
    rank = len(b.shape(x))
    dim = int(arg(node, 1, "dim", 0)) % rank
    for o in b.outputs(node):
        for out_d, in_d in enumerate(d for d in range(rank) if d != dim):
            b.link(x, in_d, o, out_d)
    b.keep_dim(x, dim, f"unbind along dim {dim}")


@rule("aten.transpose", "aten.t", "aten.permute", "aten.movedim", "aten.swapaxes")
def _permute(b: Any, node: fx.Node) -> None:
    x = node.args[0]
    rank = len(b.shape(x))
    order = list(range(rank))
    key = op_key(node.target)
    if rank < 2:
        b.link(x, 0, node, 0)
        return
    if key == "aten.permute":
        order = [int(d) % rank for d in node.args[1]]
    elif key in ("aten.transpose", "aten.swapaxes", "aten.t"):
        d0, d1 = (0, 1) if key == "aten.t" else (int(node.args[1]) % rank, int(node.args[2]) % rank)
        order[d0], order[d1] = order[d1], order[d0]
    else:
        b.unsupported("permutation not read")
        return
    for out_d, in_d in enumerate(order):
        b.link(x, in_d, node, out_d)


def _groups(a: list[int], c: list[int]) -> list[tuple[list[int], list[int]]]:
    """Pair runs of dims of shape ``a`` and shape ``c`` with equal products (view semantics)."""
    i = j = 0
    out: list[tuple[list[int], list[int]]] = []
    while i < len(a) or j < len(c):
        if i < len(a) and a[i] == 1 and (j >= len(c) or c[j] != 1):
            out.append(([i], []))
            i += 1
            continue
        if j < len(c) and c[j] == 1 and (i >= len(a) or a[i] != 1):
            out.append(([], [j]))
            j += 1
            continue
        if i >= len(a) or j >= len(c):
            return []
        ii, jj, pa, pc = [i], [j], a[i], c[j]
        i, j = i + 1, j + 1
        while pa != pc:
            if pa < pc and i < len(a):
                ii.append(i)
                pa *= a[i]
                i += 1
            elif pc < pa and j < len(c):
                jj.append(j)
                pc *= c[j]
                j += 1
            else:
                return []
        out.append((ii, jj))
    return out


def feeds_attention(node: fx.Node, depth: int = 4) -> bool:
    """Whether ``node`` reaches scaled_dot_product_attention / matmul through layout ops."""
    frontier = [node]
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for user in n.users:
                key = op_key(user.target)
                if key in ("aten.scaled_dot_product_attention", "aten.matmul", "aten.bmm"):
                    return True
                if key in ("aten.transpose", "aten.permute", "aten.contiguous", "aten.clone", "aten.mul", "aten.div"):
                    nxt.append(user)
        frontier = nxt
    return False


@rule("aten.view", "aten.reshape", "aten._unsafe_view", "aten.flatten", "aten.unflatten", "aten.squeeze",
      "aten.unsqueeze")
def _view(b: Any, node: fx.Node) -> None:
    x = node.args[0]
    a, c = list(b.shape(x)), list(b.shape(node))
    heads = feeds_attention(node)
    pairs = [([i for i in ii if a[i] != 1], [j for j in jj if c[j] != 1]) for ii, jj in _groups(a, c)]
    if not pairs and any(size != 1 for size in a + c):
        b.unsupported(f"view {tuple(a)} -> {tuple(c)} pairs no dims")
        return
    if any(len(ii) > 1 and len(jj) > 1 for ii, jj in pairs):
        b.unsupported(f"view {tuple(a)} -> {tuple(c)} merges and splits dims at once")
        return
    for ii, jj in pairs:
        if len(ii) == 1 and len(jj) == 1:
            b.link(x, ii[0], node, jj[0])
        elif len(ii) > 1 and len(jj) == 1:  # merge: follow the first factor (C of C x H x W)
            first, block = ii[0], int(np.prod([a[i] for i in ii[1:]]))
            b.link(x, first, node, jj[0], np.arange(c[jj[0]]) // block, np.arange(c[jj[0]]))
        elif len(ii) == 1 and len(jj) > 1:
            n = a[ii[0]]
            if heads:  # (H*hd) -> (H, hd): whole heads
                first, block = jj[0], int(np.prod([c[j] for j in jj[1:]]))
                b.link(x, ii[0], node, first, np.arange(n), np.arange(n) // block)
                b.record_heads(node, first)
            else:  # (g*c) -> (g, c): channel i of every group, as channel shuffle needs
                last = jj[-1]
                b.link(x, ii[0], node, last, np.arange(n), np.arange(n) % c[last])


@rule("aten.select")
def _select(b: Any, node: fx.Node) -> None:
    x, dim = node.args[0], int(node.args[1])
    rank = len(b.shape(x))
    dim %= rank
    kept = [d for d in range(rank) if d != dim]
    for out_d, in_d in enumerate(kept):
        b.link(x, in_d, node, out_d)


@rule("aten.slice")
def _slice(b: Any, node: fx.Node) -> None:
    """Dims other than the sliced one follow; a full slice is the identity."""
    x = node.args[0]
    shape = b.shape(x)
    dim = int(arg(node, 1, "dim", 0)) % len(shape)
    for d in range(len(shape)):
        if d != dim or b.shape(node)[d] == shape[d]:
            b.link(x, d, node, d)


