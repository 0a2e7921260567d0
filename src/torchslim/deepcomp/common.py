"""Shared by the Deep Compression steps: which layers, their masks, and masked retraining.

A pruned weight is an exact +0.0, so a later step (weight sharing, encoding, another
pruning round) recovers the mask as ``weight != 0`` and the saved model needs no mask
buffers. Masks are written with ``masked_fill`` rather than multiplied in: ``w * 0`` is -0.0
for negative ``w``, whose bit pattern is not zero and would be stored as a non-zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from torchslim.core.context import Context
from torchslim.core.select import select_layers
from torchslim.errors import UserError

LAYER_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "linear": (nn.Linear,),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
}


def weight_layers(model: nn.Module, types: tuple[str, ...], include: tuple[str, ...] = (),
                  exclude: tuple[str, ...] = (), field: str = "types") -> list[tuple[str, nn.Module]]:
    """Selected layers that own a ``weight`` parameter, in module order."""
    classes: tuple[type[nn.Module], ...] = ()
    for t in types:
        if t not in LAYER_TYPES:
            raise UserError(f"field '{field}': unknown layer type '{t}' (known: {', '.join(LAYER_TYPES)})")
        classes += LAYER_TYPES[t]
    layers = [(n, m) for n, m in select_layers(model, classes, include, exclude)
              if isinstance(getattr(m, "weight", None), torch.Tensor)]
    if not layers:
        raise UserError("no layer matches the types/include/exclude fields")
    return layers


def check_names(layers: list[tuple[str, nn.Module]], per_layer: dict[str, Any], field: str) -> None:
    known = {n for n, _ in layers}
    for name in per_layer:
        if name not in known:
            raise UserError(f"field '{field}': '{name}' is not a selected layer (selected: {', '.join(sorted(known))})")


@torch.no_grad()
def apply_masks(masks: dict[str, torch.Tensor], layers: dict[str, nn.Module]) -> None:
    for name, mask in masks.items():
        layers[name].weight.masked_fill_(~mask, 0.0)


def mask_hooks(masks: dict[str, torch.Tensor], layers: dict[str, nn.Module]) -> tuple[list[Any], Callable]:
    """Gradient hooks zeroing pruned weights' gradients (so momentum never builds up on them)
    plus an ``after_step`` hook re-applying the masks; ``masks`` may be replaced while training."""
    handles = [layers[n].weight.register_hook(lambda g, n=n: g.masked_fill(~masks[n], 0.0)) for n in masks]

    def after_step(_step: Any) -> None:
        apply_masks(masks, layers)

    return handles, after_step


def require_data(ctx: Context, epochs: int) -> Any:
    if epochs > 0 and ctx.data is None:
        raise UserError("retraining needs data (add a 'data' section to the recipe) or set epochs: 0")
    return ctx.data


def retrain(model: nn.Module, ctx: Context, *, epochs: int, lr: float, optimizer: str, momentum: float,
            weight_decay: float, batch_size: int, after_step: list[Callable] | None = None) -> list[float]:
    """``torchslim.train.fit`` on ``ctx.data.train``; returns the validation accuracy per epoch."""
    if epochs <= 0:
        return []
    from torchslim.train import fit

    data = require_data(ctx, epochs)
    history = fit(model, data.train, epochs=epochs, lr=lr, optimizer=optimizer, momentum=momentum,
                  weight_decay=weight_decay, batch_size=batch_size, after_step=after_step or [],
                  val_data=data.val, seed=ctx.seed, progress=ctx.progress)
    return [round(a, 4) for a in history.val_accuracy]
