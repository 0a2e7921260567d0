"""Knowledge distillation, usable alone or as the recovery step after any compression.

Losses (one file each, each citing its paper): ``kd`` (Hinton et al. 2015, soft targets at
temperature T with T^2 scaling), ``l2`` (Ba & Caruana 2014, logit regression),
``fitnets`` (Romero et al. 2015, hint / guided layers with a regressor, two stages),
``adversarial`` (Belagiannis et al. 2018, feature discriminator + logit L2, no labels).
Features are read with forward hooks (``taps``), never by editing ``forward()``.
Everything trains through ``torchslim.train.fit``.

- Python: ``distill_(student, teacher, data, method="kd", epochs=..., temperature=...)``
- Recipe: ``- finetune: {epochs: 2, distill: kd}`` after a compression step (the teacher is
  the original model).
"""

from torchslim.distill.adversarial import (
    AdversarialDistiller,
    discriminator_loss,
    make_discriminator,
    student_adversarial_loss,
)
from torchslim.distill.config import FinetuneConfig
from torchslim.distill.finetune import finetune_, finetune_step_
from torchslim.distill.fitnets import hint_loss, make_regressor, train_hints_
from torchslim.distill.kd import kd_loss, soft_target_loss
from torchslim.distill.l2 import logit_l2_loss
from torchslim.distill.taps import FeatureTap
from torchslim.distill.trainer import distill_, run_distillation

__all__ = [
    "AdversarialDistiller",
    "FeatureTap",
    "FinetuneConfig",
    "discriminator_loss",
    "distill_",
    "finetune_",
    "finetune_step_",
    "hint_loss",
    "kd_loss",
    "logit_l2_loss",
    "make_discriminator",
    "make_regressor",
    "run_distillation",
    "soft_target_loss",
    "student_adversarial_loss",
    "train_hints_",
]
