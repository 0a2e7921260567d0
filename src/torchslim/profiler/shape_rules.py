"""Shape-only outputs for ops whose fake-tensor kernel is slow (hand-written, measured).

Under ``FakeTensorMode`` an op only has to produce an output of the right shape, dtype,
device and strides. For batch norm the fake kernel is a Python decomposition that the
fake-tensor cache skips (the op has mutable arguments): ~1 ms per call, 75% of the
profile time of ResNet-50 (182 ms -> 44 ms for its forward with this rule). In eval mode
its output is shaped and laid out like its input, so ``empty_like`` gives the same fake
output directly. A rule returns ``NotImplemented`` to fall back to the real fake kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

aten = torch.ops.aten

ShapeRule = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def _batch_norm_eval(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """(output like input, empty save_mean, empty save_invstd): what CPU eval BN returns."""
    x = args[0]
    training = args[5] if len(args) > 5 else kwargs.get("training", True)
    if training or kwargs:
        return NotImplemented
    return aten.empty_like.default(x), x.new_empty((0,)), x.new_empty((0,))


def _batch_norm_legit_no_training(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs:
        return NotImplemented
    x = args[0]
    return aten.empty_like.default(x), x.new_empty((0,)), x.new_empty((0,))


FAKE_SHAPE_RULES: dict[Any, ShapeRule] = {
    aten.native_batch_norm.default: _batch_norm_eval,
    aten._native_batch_norm_legit_no_training.default: _batch_norm_legit_no_training,
}
