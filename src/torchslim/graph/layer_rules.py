"""Propagation rules of layers with parameters: linear, conv (plain, depthwise, grouped,
transposed), batch / instance / layer / group norm, embedding.

A layer's weight dims get roles (``out`` filters, ``in`` consumer columns, ``bias``,
``affine`` norm parameters and statistics) that importance criteria and the oracle read.
Registered into :data:`torchslim.graph.rules.RULES`; see that module for the rule contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import fx

from torchslim.graph.rules import arg, rule


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
    if groups != 1:
        b.unsupported("grouped transposed conv")
        return
    b.link(x, 0, node, 0)
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
