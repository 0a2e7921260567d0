"""The default training loss: cross-entropy with label smoothing (Szegedy et al. 2016).

With K classes and smoothing eps the target distribution is (1 - eps) one_hot(y) + eps / K,
so loss = -(1 - eps) log p_y - (eps / K) sum_k log p_k, averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchslim.train.context import LossFn, StepContext


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    """``loss_fn`` for ``fit``: outputs (B, K) logits, targets (B,) int64 -> scalar mean."""

    def loss(ctx: StepContext) -> torch.Tensor:
        return F.cross_entropy(ctx.outputs, ctx.targets, label_smoothing=label_smoothing)

    return loss
