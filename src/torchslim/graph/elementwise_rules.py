"""Propagation rules of pointwise ops (numpy broadcasting over *every* tensor operand), of
pooling and resampling (batch and channels follow, space does not) and of pixel shuffle.

Registered into :data:`torchslim.graph.rules.RULES`; see that module for the rule contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import fx

from torchslim.graph.rules import op_key, rule, tensor_args


def broadcast(b: Any, node: fx.Node, operands: list[Any]) -> None:
    """Numpy broadcasting: an operand dim of the output's size follows it; size-1 dims do not
    (they broadcast, so they can stay while the output's dim shrinks)."""
    out = b.shape(node)
    for x in operands:
        shape = b.shape(x)
        for k in range(1, len(shape) + 1):
            if shape[-k] == out[-k]:
                b.link(x, len(shape) - k, node, len(out) - k)


# Every tensor operand broadcasts against the output: unary activations, binary arithmetic,
# comparisons, where(cond, a, b), masked_fill(x, mask, v), lerp(a, b, w), addcmul(x, a, b),
# clamp(x, min=t, max=t) with tensor bounds. Scalar arguments are not tensors and are skipped.
@rule(
    "aten.relu", "aten.relu_", "aten.relu6", "aten.hardtanh", "aten.hardtanh_", "aten.gelu", "aten.silu",
    "aten.silu_", "aten.sigmoid", "aten.tanh", "aten.hardswish", "aten.hardswish_", "aten.hardsigmoid",
    "aten.leaky_relu", "aten.leaky_relu_", "aten.elu", "aten.mish", "aten.softplus", "aten.clamp",
    "aten.clamp_min", "aten.clamp_max", "aten.dropout", "aten.feature_dropout", "aten.alpha_dropout",
    "aten.contiguous", "aten.clone", "aten.detach", "aten.abs", "aten.exp", "aten.neg", "aten.sqrt",
    "aten.rsqrt", "aten.square", "aten.to", "aten._to_copy", "aten.alias", "aten.lift_fresh_copy",
    "aten.erf", "aten.log", "aten.reciprocal", "aten.sin", "aten.cos", "aten.prelu_scalar",
    "aten.add", "aten.add_", "aten.sub", "aten.sub_", "aten.mul", "aten.mul_", "aten.div", "aten.div_",
    "aten.maximum", "aten.minimum", "aten.where", "aten.pow", "aten.rsub", "aten.addcmul", "aten.addcdiv",
    "aten.lerp", "aten.masked_fill", "aten.gt", "aten.ge", "aten.lt", "aten.le", "aten.eq", "aten.ne",
    "aten.logical_not", "aten.logical_and", "aten.logical_or",
)
def _pointwise(b: Any, node: fx.Node) -> None:
    broadcast(b, node, tensor_args(b, node))


@rule("aten.type_as")
def _type_as(b: Any, node: fx.Node) -> None:
    """x.type_as(other): x's shape, other's dtype; other's elements are not coupled to it."""
    broadcast(b, node, [node.args[0]])
    b.keep(node.args[1])


@rule("aten.expand", "aten.broadcast_to")
def _expand(b: Any, node: fx.Node) -> None:
    broadcast(b, node, [node.args[0]])


@rule("aten.expand_as")
def _expand_as(b: Any, node: fx.Node) -> None:
    """x.expand_as(other) has other's shape, read at run time: other's dims are the output's."""
    x, other = node.args[0], node.args[1]
    for d in range(len(b.shape(other))):
        b.link(other, d, node, d)
    broadcast(b, node, [x])


@rule("getitem")
def _getitem(b: Any, node: fx.Node) -> None:
    source, index = node.args
    if isinstance(source, fx.Node) and isinstance(index, int) and b.is_tensor((source.name, index)):
        for d in range(len(b.shape(node))):
            b.link((source.name, index), d, node, d)


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
