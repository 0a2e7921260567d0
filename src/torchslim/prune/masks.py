"""Unstructured weight masks, held as exact zeros.

A pruned weight is an exact +0.0, so a later step (weight sharing, encoding, another pruning
round) recovers the mask as ``weight != 0`` and the saved model needs no mask buffers. Masks
are written with ``masked_fill`` rather than multiplied in: ``w * 0`` is -0.0 for negative
``w``, whose bit pattern is not zero and would be stored as a non-zero.

While training, :func:`enforced_masks` zeroes the gradients of pruned weights (so momentum
never builds up on them) and hands back an ``after_step`` hook for
:func:`torchslim.distill.finetune.finetune_` that writes the zeros again after every
optimizer step (weight decay, Adam's update of a zero-gradient weight).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from torchslim.train import StepContext, StepHook


def weight_masks(layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """{layer name: boolean keep-mask (weight shape) of its non-zero weights}."""
    return {name: layer.weight.detach() != 0 for name, layer in layers.items()}


@torch.no_grad()
def apply_masks(masks: Mapping[str, torch.Tensor], layers: Mapping[str, nn.Module]) -> None:
    """Set every weight outside its keep-mask to +0.0."""
    for name, mask in masks.items():
        layers[name].weight.masked_fill_(~mask, 0.0)


@contextmanager
def enforced_masks(masks: Mapping[str, torch.Tensor], layers: Mapping[str, nn.Module]) -> Iterator[StepHook]:
    """Gradient hooks zeroing pruned weights' gradients for the duration, and the
    ``after_step`` hook re-applying the masks. ``masks`` is read at every call, so a
    schedule may replace its entries while training (AGP)."""
    handles = [layers[n].weight.register_hook(lambda g, n=n: g.masked_fill(~masks[n], 0.0)) for n in masks]

    def after_step(_step: StepContext) -> None:
        apply_masks(masks, layers)

    try:
        yield after_step
    finally:
        for handle in handles:
            handle.remove()
