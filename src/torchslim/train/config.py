"""``TrainConfig``: the one description of a training run, used everywhere torchslim trains.

The recipe's ``train:`` section, the ``finetune`` step, and the nested ``finetune:`` field of
every technique that trains or recovers (``prune.channels``, ``quant.qat``, ``lowrank.svd``
...) are all this dataclass, validated by the same rules with the same one-line errors::

    steps:
      - prune.channels: {target_macs: 2.0, finetune: {epochs: 2, lr: 0.01, distill: kd}}

Fields a recipe does not give keep the technique's own defaults (a nested mapping is merged
over the field's default, see :func:`torchslim.core.config.from_mapping`).

Training (as :func:`torchslim.train.fit`): ``epochs`` (0: no training), ``batch_size``,
``lr`` (None: 0.01, or 0.001 for l2 and adversarial: regressing logits has a curvature
~ |features|^2 that cross-entropy's softmax bounds, and SGD at 0.01 diverges there within a
few steps, measured on pruned LeNet-5 in benchmarks/distill_mnist.py), ``optimizer``
(sgd | adamw), ``momentum``, ``weight_decay``, ``schedule`` (cosine | constant),
``label_smoothing``.

``distill``: none (cross-entropy on labels) | kd (Hinton et al. 2015) | l2 (Ba & Caruana
2014, no labels) | fitnets (Romero et al. 2015) | adversarial (Belagiannis et al. 2018, no
labels); the teacher is the model before compression (``ctx.teacher``).
kd, fitnets stage 2: ``temperature`` T, ``alpha`` (weight of the soft term).
fitnets: ``hint_layer`` (teacher module), ``guided_layer`` (student module, default: the
hint layer's name), ``hint_epochs`` and ``hint_lr`` (stage 1; lr defaults to ``lr``).
adversarial: ``feature_layer`` / ``student_feature_layer`` (module name, or ``name:input``;
default: the input of the last Linear), ``discriminator_hidden`` widths, ``discriminator_lr``
(Adam), ``feature_dropout`` on student features, ``adversarial_weight`` (student's
adversarial term vs logit L2), ``sample_weight`` (adversarial samples in the discriminator loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torchslim.core.config import Checked

DISTILL_METHODS = ("none", "kd", "l2", "fitnets", "adversarial")


@dataclass(frozen=True)
class TrainConfig(Checked):
    epochs: int = 2
    batch_size: int = 64
    lr: float | None = None
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    label_smoothing: float = 0.0
    distill: Literal["none", "kd", "l2", "fitnets", "adversarial"] = "none"
    temperature: float = 4.0
    alpha: float = 0.9
    hint_layer: str | None = None
    guided_layer: str | None = None
    hint_epochs: int = 1
    hint_lr: float | None = None
    feature_layer: str | None = None
    student_feature_layer: str | None = None
    discriminator_hidden: tuple[int, ...] = (128, 128)
    discriminator_lr: float = 1e-3
    feature_dropout: float = 0.5
    adversarial_weight: float = 1.0
    sample_weight: float = 1.0

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValueError(f"field '{name}' must be {rule}, got {getattr(self, name)!r}")

        check(self.epochs >= 0, "epochs", ">= 0")
        check(self.batch_size >= 1, "batch_size", ">= 1")
        check(self.lr is None or self.lr >= 0, "lr", ">= 0")
        check(0.0 <= self.momentum < 1.0, "momentum", "in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", ">= 0")
        check(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "in [0, 1)")
        check(self.distill in DISTILL_METHODS, "distill", "one of " + ", ".join(DISTILL_METHODS))
        check(self.temperature > 0, "temperature", "> 0")
        check(0.0 <= self.alpha <= 1.0, "alpha", "in [0, 1]")
        check(self.hint_epochs >= 1, "hint_epochs", ">= 1")
        check(self.hint_lr is None or self.hint_lr >= 0, "hint_lr", ">= 0")
        check(0.0 <= self.feature_dropout < 1.0, "feature_dropout", "in [0, 1)")
        check(all(h >= 1 for h in self.discriminator_hidden), "discriminator_hidden", "positive widths")
        check(self.discriminator_lr >= 0, "discriminator_lr", ">= 0")
        check(self.distill != "fitnets" or bool(self.hint_layer), "hint_layer",
              "a teacher module name when distill is fitnets")

    @property
    def effective_lr(self) -> float:
        """``lr``, or its default for the method: 0.001 for logit regression, else 0.01."""
        if self.lr is not None:
            return self.lr
        return 0.001 if self.distill in ("l2", "adversarial") else 0.01

    def fit_kwargs(self) -> dict[str, Any]:
        """The arguments this config passes to :func:`torchslim.train.fit`, epochs included."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.effective_lr,
                "optimizer": self.optimizer, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "schedule": self.schedule, "label_smoothing": self.label_smoothing}
