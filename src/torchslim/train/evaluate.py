"""Top-1 accuracy of a classifier on a dataset."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from torchslim.data.access import batches, check_split
from torchslim.errors import UserError


def model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter or buffer; CPU for a stateless module."""
    first = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def evaluate(model: nn.Module, data: Dataset | DataLoader, *, batch_size: int = 256) -> float:
    """Fraction in [0, 1] of examples whose argmax over model(inputs) (B, K) equals the label.

    ``data``: any split :mod:`torchslim.data.access` reads (a DataLoader at its own batch
    size), moved batch by batch to the model's device. Runs in eval mode without gradients;
    every submodule's train/eval mode is restored after.
    """
    check_split(data, "evaluate: data")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"evaluate: batch_size must be >= 1, got {batch_size}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    correct = seen = 0
    try:
        with torch.no_grad():
            for inputs, targets in batches(data, batch_size, device=model_device(model)):
                if targets is None:
                    raise UserError("evaluate: the batches carry no labels (give (inputs, labels) pairs, or an eval_fn)")
                correct += int((model(inputs).argmax(dim=1) == targets).sum())
                seen += len(inputs)
    finally:
        for m, training in modes:
            m.training = training
    if seen == 0:
        raise UserError("evaluate: data is empty")
    return correct / seen
