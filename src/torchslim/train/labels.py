"""Checks on what the default classification loss is fed, so a wrong label is one clear line
instead of a CUDA assert or torch's "Target 10 is out of bounds" from inside cross-entropy."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from torchslim.errors import UserError


def check_class_labels(targets: torch.Tensor | None, outputs: torch.Tensor, train_data: object) -> None:
    """UserError unless ``targets`` (B,) are integer class indices in 0..K-1 for ``outputs`` (B, K).

    The count of an offending label is over the whole split when it is an in-memory
    TensorDataset (cheap), else over this batch.
    """
    if targets is None:
        raise UserError("fit: the batches carry no labels; the default cross-entropy loss needs (inputs, labels) "
                        "pairs (pass loss_fn for unlabelled training)")
    if targets.is_floating_point() or targets.dtype == torch.bool or targets.is_complex():
        raise UserError(f"fit: labels are {str(targets.dtype).removeprefix('torch.')}; the default cross-entropy "
                        "loss needs integer class labels 0..K-1 (pass loss_fn for regression or soft targets)")
    if outputs.dim() != 2 or targets.dim() != 1:
        return  # dense prediction (B, K, H, W) and the like: cross-entropy checks the shapes itself
    k = outputs.shape[1]
    low, high = int(targets.min()), int(targets.max())
    if low >= 0 and high < k:
        return
    bad = low if low < 0 else high
    every = train_data.tensors[1] if isinstance(train_data, TensorDataset) and len(train_data.tensors) > 1 else None
    if every is not None:
        count, where = int((every == bad).sum()), "examples in train_data"
    else:
        count, where = int((targets == bad).sum()), "examples in this batch"
    raise UserError(f"fit: label {bad} is outside the model's {k} classes (0..{k - 1}): {count} {where}")
