"""``FinetuneConfig``: the ``finetune`` recipe step's fields, which are :class:`TrainConfig`'s."""

from __future__ import annotations

from dataclasses import dataclass

from torchslim.core.config import TechniqueConfig
from torchslim.train.config import TrainConfig


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig, TechniqueConfig):
    """Fine-tune the current model on ``data.train``, optionally distilling from the teacher.

    The fields are exactly :class:`torchslim.train.TrainConfig`'s (training and ``distill``).
    """
