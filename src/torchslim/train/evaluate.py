"""Top-1 accuracy of a classifier on a dataset."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from torchslim.errors import UserError
from torchslim.train.batches import iter_batches


def model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter or buffer; CPU for a stateless module."""
    first = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def evaluate(model: nn.Module, data: Dataset, *, batch_size: int = 256) -> float:
    """Fraction in [0, 1] of examples whose argmax over model(inputs) (B, K) equals the label.

    Runs in eval mode without gradients; every submodule's train/eval mode is restored after.
    """
    n = len(data)  # type: ignore[arg-type]
    if n == 0:
        raise UserError("evaluate: data is empty")
    if batch_size < 1:
        raise UserError(f"evaluate: batch_size must be >= 1, got {batch_size}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for inputs, targets in iter_batches(data, range(n), batch_size, model_device(model)):
                correct += int((model(inputs).argmax(dim=1) == targets).sum())
    finally:
        for m, training in modes:
            m.training = training
    return correct / n
