"""What the training loop hands to hooks (StepContext) and returns (TrainHistory)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class StepContext:
    """One optimizer step, as seen by ``loss_fn``, ``extra_losses`` and ``after_step`` hooks.

    model: the unwrapped module being trained (never the DistributedDataParallel wrapper).
    inputs: (B, ...) batch on the model's device; targets: (B,) int64 labels.
    outputs: model(inputs), e.g. (B, num_classes) logits, still attached to the graph.
    epoch: 0-based epoch; step: 0-based global optimizer step (counts across epochs).
    loss: the total loss of this step, detached; None while the loss is being computed.
    """

    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    outputs: torch.Tensor
    epoch: int
    step: int
    loss: torch.Tensor | None = None


LossFn = Callable[[StepContext], torch.Tensor]
StepHook = Callable[[StepContext], None]


@dataclass
class TrainHistory:
    """Per-epoch records; index e is epoch e (epochs restored from a checkpoint included).

    train_loss: mean total loss (default or ``loss_fn`` plus ``extra_losses``) over the
    epoch's examples, averaged over all processes. val_accuracy: top-1 fraction on
    ``val_data`` after the epoch (empty without val_data). epoch_seconds: wall time.
    """

    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[float]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> TrainHistory:
        return cls(**{k: [float(v) for v in data.get(k, [])] for k in cls.__dataclass_fields__})
