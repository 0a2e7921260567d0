"""``FinetuneConfig``: the ``finetune`` recipe step's fields, which are :class:`TrainConfig`'s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torchslim.core.config import TechniqueConfig
from torchslim.train.config import TrainConfig


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig, TechniqueConfig):
    """Fine-tune the current model on ``data.train``, optionally distilling from the teacher.

    The fields are exactly :class:`torchslim.train.TrainConfig`'s (training and ``distill``).
    """

    keeps_layer_names: ClassVar[bool] = True  # layers keep their names (no containers)
