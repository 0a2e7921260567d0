"""Channel-propagation rules, one per ATen op (keyed by the op itself, ``aten.conv2d`` ...).

Every tensor dimension of every value in the exported graph is a *space* of elements
(channel 0..C-1 of a conv output is one space; the rows of a weight are another). A rule
says which elements of its inputs, outputs and parameters must be removed together
(``b.link``); the dependency graph unions them. Whatever a rule does not link is *blocked*
by the builder: it can never be removed. So an op without a rule blocks every dimension it
touches, and a mistake in a rule can only make pruning more conservative, never wrong —
except for the index maps below, which the oracle tests check on toy models and the zoo.

Index maps that are not the identity:
- ``cat`` / ``chunk``: offsets into the concatenated dimension; ``chunk`` also links the
  i-th element of every chunk (chunk sizes are recomputed from the total at run time, so
  they must stay equal);
- views that *merge* dims (flatten C x H x W into a Linear): element ``c*HW + s`` follows
  channel ``c`` (the first factor); the other factors are blocked;
- views that *split* a dim into (A, B): element ``a*B + b`` follows ``b`` (channel
  shuffle, GroupNorm-style) — or ``a`` when the split feeds attention (whole heads);
- grouped convs: depthwise (1 input channel per group) removes whole groups; otherwise
  channel ``i`` of every group is removed together so groups stay equal;
- ``pixel_shuffle``: input channel ``c*r^2 + k`` follows output channel ``c``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
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
    def wrap(fn: Rule) -> Rule:
        for name in names:
            RULES[name] = fn
        return fn

    return wrap


def arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


# ---------------------------------------------------------------- elementwise


def _broadcast(b: Any, node: fx.Node, inputs: list[Any]) -> None:
    """Numpy broadcasting: an input dim of the output's size follows it; size-1 dims do not."""
    out = b.shape(node)
    for x in inputs:
        shape = b.shape(x)
        for k in range(1, len(shape) + 1):
            if shape[-k] == out[-k]:
                b.link(x, len(shape) - k, node, len(out) - k)


@rule(
    "aten.relu", "aten.relu_", "aten.relu6", "aten.hardtanh", "aten.hardtanh_", "aten.gelu", "aten.silu",
    "aten.silu_", "aten.sigmoid", "aten.tanh", "aten.hardswish", "aten.hardswish_", "aten.hardsigmoid",
    "aten.leaky_relu", "aten.leaky_relu_", "aten.elu", "aten.mish", "aten.softplus", "aten.clamp",
    "aten.clamp_min", "aten.clamp_max", "aten.dropout", "aten.feature_dropout", "aten.alpha_dropout",
    "aten.contiguous", "aten.clone", "aten.detach", "aten.abs", "aten.exp", "aten.neg", "aten.sqrt",
    "aten.rsqrt", "aten.square", "aten.to", "aten._to_copy", "aten.type_as", "aten.alias", "aten.lift_fresh_copy",
    "aten.erf", "aten.log", "aten.reciprocal", "aten.sin", "aten.cos", "aten.prelu_scalar",
)
def _unary(b: Any, node: fx.Node) -> None:
    _broadcast(b, node, [node.args[0]])


@rule(
    "aten.add", "aten.add_", "aten.sub", "aten.sub_", "aten.mul", "aten.mul_", "aten.div", "aten.div_",
    "aten.maximum", "aten.minimum", "aten.where", "aten.pow", "aten.rsub", "aten.addcmul", "aten.lerp",
)
def _binary(b: Any, node: fx.Node) -> None:
    _broadcast(b, node, [a for a in node.args if b.is_tensor(a)])


@rule("aten.expand", "aten.expand_as", "aten.broadcast_to")
def _expand(b: Any, node: fx.Node) -> None:
    _broadcast(b, node, [node.args[0]])


@rule("getitem")
def _getitem(b: Any, node: fx.Node) -> None:
    source, index = node.args
    if isinstance(source, fx.Node) and isinstance(index, int) and b.is_tensor((source.name, index)):
        for d in range(len(b.shape(node))):
            b.link((source.name, index), d, node, d)


# ---------------------------------------------------------------- layers with parameters


@rule("aten.linear")
def _linear(b: Any, node: fx.Node) -> None:
    x, w, bias = node.args[0], node.args[1], arg(node, 2, "bias")
    xs = b.shape(x)
    for d in range(len(xs) - 1):
        b.link(x, d, node, d)
    b.link(x, len(xs) - 1, w, 1, role_b="in")
    b.link(node, len(xs) - 1, w, 0, role_b="out")
    if bias is not None:
        b.link(node, len(xs) - 1, bias, 0, role_b="bias")
    b.record_cost(node, [(node, d) for d in range(len(xs))] + [(w, 1)])


@rule("aten.conv1d", "aten.conv2d", "aten.conv3d")
def _conv(b: Any, node: fx.Node) -> None:
    x, w, bias = node.args[0], node.args[1], arg(node, 2, "bias")
    groups = int(arg(node, 6, "groups", 1))
    _conv_channels(b, node, x, w, bias, groups)


@rule("aten.convolution")
def _convolution(b: Any, node: fx.Node) -> None:
    x, w, bias = node.args[0], node.args[1], node.args[2]
    if node.args[6]:  # transposed
        _conv_transpose_channels(b, node, x, w, bias, int(node.args[8]))
    else:
        _conv_channels(b, node, x, w, bias, int(node.args[8]))


def _conv_channels(b: Any, node: fx.Node, x: Any, w: Any, bias: Any, groups: int) -> None:
    """x (N, Cin, *S), w (Cout, Cin/g, *K), out (N, Cout, *S')."""
    b.link(x, 0, node, 0)
    cin, cout = b.shape(x)[1], b.shape(node)[1]
    cin_g, cout_g = cin // groups, cout // groups
    if groups == 1:
        b.link(x, 1, w, 1, role_b="in")
        b.link(node, 1, w, 0, role_b="out")
    elif cin_g == 1:  # depthwise (multiplier cout_g): remove whole groups
        b.link(x, 1, node, 1, np.repeat(np.arange(cin), cout_g), np.arange(cout))
        b.link(node, 1, w, 0, role_b="out")
    else:  # grouped: channel i of every group goes together, groups stay equal
        b.link(x, 1, w, 1, np.arange(cin), np.arange(cin) % cin_g, role_b="in")
        b.link(node, 1, w, 0, role_b="out")
        b.link(node, 1, node, 1, np.arange(cout), np.arange(cout) % cout_g)
    if bias is not None:
        b.link(node, 1, bias, 0, role_b="bias")
    b.record_conv(node, x, w)
    b.record_cost(node, [(node, d) for d in range(len(b.shape(node)))] + [(w, d) for d in range(1, len(b.shape(w)))])


@rule("aten.conv_transpose1d", "aten.conv_transpose2d", "aten.conv_transpose3d")
def _conv_transpose(b: Any, node: fx.Node) -> None:
    x, w, bias = node.args[0], node.args[1], arg(node, 2, "bias")
    _conv_transpose_channels(b, node, x, w, bias, int(arg(node, 6, "groups", 1)))


def _conv_transpose_channels(b: Any, node: fx.Node, x: Any, w: Any, bias: Any, groups: int) -> None:
    """x (N, Cin, *S), w (Cin, Cout/g, *K); only groups == 1 is pruned."""
    b.link(x, 0, node, 0)
    if groups != 1:
        return
    b.link(x, 1, w, 0, role_b="in")
    b.link(node, 1, w, 1, role_b="out")
    if bias is not None:
        b.link(node, 1, bias, 0, role_b="bias")
    b.record_conv(node, x, w)
    b.record_cost(node, [(x, d) for d in range(len(b.shape(x)))] + [(w, d) for d in range(1, len(b.shape(w)))])


@rule("aten.batch_norm", "aten.instance_norm")
def _batch_norm(b: Any, node: fx.Node) -> None:
    """Per-channel affine map and statistics on dim 1: exact per channel."""
    x = node.args[0]
    for d in range(len(b.shape(x))):
        b.link(x, d, node, d)
    for p in node.args[1:5]:
        if b.is_tensor(p):
            b.link(node, 1, p, 0, role_b="affine")


@rule("aten.layer_norm")
def _layer_norm(b: Any, node: fx.Node) -> None:
    """Normalised dims share statistics: removing one changes the others (inexact)."""
    x, normalized = node.args[0], list(node.args[1])
    rank, k = len(b.shape(x)), len(normalized)
    for d in range(rank):
        b.link(x, d, node, d)
    for j in range(k):
        d = rank - k + j
        b.inexact(node, d)
        for p in (arg(node, 2, "weight"), arg(node, 3, "bias")):
            if b.is_tensor(p):
                b.link(node, d, p, j, role_b="affine")


@rule("aten.group_norm")
def _group_norm(b: Any, node: fx.Node) -> None:
    """Whole groups are removed (exact); with one group, channels share statistics (inexact)."""
    x, groups = node.args[0], int(node.args[1])
    shape = b.shape(x)
    for d in range(len(shape)):
        if d != 1:
            b.link(x, d, node, d)
    c = shape[1]
    if groups == 1:
        b.link(x, 1, node, 1)
        b.inexact(node, 1)
    else:
        b.link(x, 1, node, 1, np.arange(c), (np.arange(c) // (c // groups)) * (c // groups))
        b.link(node, 1, node, 1, np.arange(c), (np.arange(c) // (c // groups)) * (c // groups))
    for p in (arg(node, 2, "weight"), arg(node, 3, "bias")):
        if b.is_tensor(p):
            b.link(node, 1, p, 0, role_b="affine")


@rule("aten.embedding")
def _embedding(b: Any, node: fx.Node) -> None:
    w, idx = node.args[0], node.args[1]
    rank = len(b.shape(node))
    for d in range(rank - 1):
        b.link(idx, d, node, d)
    b.link(node, rank - 1, w, 1, role_b="out")


# ---------------------------------------------------------------- pooling, resampling, reductions


@rule(
    "aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d", "aten.avg_pool1d", "aten.avg_pool2d",
    "aten.avg_pool3d", "aten.adaptive_avg_pool1d", "aten.adaptive_avg_pool2d", "aten.adaptive_avg_pool3d",
    "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.max_pool2d_with_indices",
    "aten.upsample_nearest1d", "aten.upsample_nearest2d", "aten.upsample_nearest3d", "aten.upsample_bilinear2d",
    "aten.upsample_bicubic2d", "aten.upsample_linear1d", "aten.upsample_trilinear3d", "aten._adaptive_avg_pool2d",
)
def _spatial(b: Any, node: fx.Node) -> None:
    """(N, C, *S) -> (N, C, *S'): batch and channels follow, space does not."""
    x = node.args[0]
    for o in b.outputs(node):
        b.link(x, 0, o, 0)
        b.link(x, 1, o, 1)


@rule("aten.pixel_shuffle", "aten.pixel_unshuffle")
def _pixel_shuffle(b: Any, node: fx.Node) -> None:
    x, r = node.args[0], int(node.args[1])
    b.link(x, 0, node, 0)
    if op_key(node.target) == "aten.pixel_shuffle":  # in channel c*r^2 + k -> out channel c
        n = b.shape(x)[1]
        b.link(x, 1, node, 1, np.arange(n), np.arange(n) // (r * r))
    else:
        n = b.shape(node)[1]
        b.link(node, 1, x, 1, np.arange(n), np.arange(n) // (r * r))


@rule("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.logsumexp")
def _reduce(b: Any, node: fx.Node) -> None:
    """Reduced dims are blocked (removing an element changes the result); the rest follow."""
    x = node.args[0]
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
    x = node.args[0]
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


# The shape-op rules (cat, chunk, permute, view, select, slice) live in their own file;
# importing it registers them in RULES.
from torchslim.graph import shape_rules as _shape_rules  # noqa: E402,F401
