"""Adversarial network compression (Belagiannis, Farshad & Galasso 2018, "Adversarial Network
Compression", ECCV workshops). No labels are used.

A discriminator D (a small MLP, logit output, D(f) = sigmoid(logit)) tells the teacher's
features f_t from the student's f_s; the student plays the generator. With binary
cross-entropy BCE(logit, label) and dropout on the student's features, f~_s = dropout(f_s):

    student:        L_S = (1/2B) sum ||z_s - z_t||^2  +  w_adv * BCE(D(f~_s), 1)
    discriminator:  L_D = BCE(D(f_t), 1) + BCE(D(f_s), 0)  +  w_reg * BCE(D(f~_s), 1)

The student's logits also match the teacher's with the L2 loss of Ba & Caruana (``l2.py``).
The student's adversarial term is the non-saturating form of maximising log D(f_s)
(Goodfellow et al. 2014). The last term of L_D is the paper's regulariser: the dropped-out
student features are *adversarial samples* labelled as teacher, which keeps D from becoming
trivially strong early in training without shrinking its capacity. Features default to the
input of the last ``nn.Linear`` (what the classifier sees); if the student's feature size
differs from the teacher's, a Linear adaptor (trained with the student, then discarded) maps
it, as the authors' code does with an extra student layer.

Training with ``torchslim.train.fit``: ``loss`` is the ``loss_fn`` (student step) and
``step_discriminator`` an ``after_step`` hook that takes one step of D's *own* Adam
optimiser on the features recorded during that same step (the student's detached). Under
torchrun D is not part of the DDP-wrapped model, so the hook all-reduces (averages) D's
gradients itself; D starts identical on every process (seeded), so it stays in sync.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from torchslim.distill.common import seeded, teacher_logits
from torchslim.distill.l2 import logit_l2_loss
from torchslim.distill.taps import FeatureTap, last_linear_input
from torchslim.errors import UserError
from torchslim.train import StepContext


def make_discriminator(in_features: int, hidden: Sequence[int] = (128, 128)) -> nn.Sequential:
    """MLP (B, in_features) -> (B, 1) logits: Linear-LeakyReLU(0.2) per hidden width, then Linear."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def discriminator_loss(
    d_teacher: torch.Tensor, d_student: torch.Tensor, d_adversarial: torch.Tensor, sample_weight: float = 1.0
) -> torch.Tensor:
    """BCE(D(f_t), 1) + BCE(D(f_s), 0) + sample_weight * BCE(D(dropout(f_s)), 1); logits (B, 1)."""
    return _bce(d_teacher, 1.0) + _bce(d_student, 0.0) + sample_weight * _bce(d_adversarial, 1.0)


def student_adversarial_loss(d_adversarial: torch.Tensor) -> torch.Tensor:
    """BCE(D(dropout(f_s)), 1) = -mean log D(f~_s): small when D takes the student for the teacher."""
    return _bce(d_adversarial, 1.0)


class AdversarialDistiller:
    """Holds D, its optimiser, the feature taps and the last step's features for ``fit``.

    ``probe``: a few training inputs (N, ...) used once to size D and the adaptor.
    ``helpers``: modules to train with the student (the adaptor, if feature sizes differ).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        probe: torch.Tensor,
        *,
        feature_layer: str | None = None,
        student_feature_layer: str | None = None,
        hidden: Sequence[int] = (128, 128),
        lr: float = 1e-3,
        dropout: float = 0.5,
        adversarial_weight: float = 1.0,
        sample_weight: float = 1.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"adversarial: feature_dropout must be in [0, 1), got {dropout}")
        self.teacher = teacher
        self.t_spec = feature_layer or last_linear_input(teacher)
        self.s_spec = student_feature_layer or (feature_layer if feature_layer else last_linear_input(student))
        self.t_tap = FeatureTap(teacher, [self.t_spec], "feature_layer")
        self.s_tap = FeatureTap(student, [self.s_spec], "student_feature_layer")
        self.dropout, self.adversarial_weight, self.sample_weight = dropout, adversarial_weight, sample_weight
        modes = [(m, m.training) for m in student.modules()]
        student.eval()
        with torch.no_grad():
            teacher_logits(teacher, probe)
            student(probe)
        for m, training in modes:
            m.training = training
        t_dim, s_dim = self.t_tap[self.t_spec][0].numel(), self.s_tap[self.s_spec][0].numel()
        with seeded(seed):
            self.discriminator = make_discriminator(t_dim, hidden).to(probe.device)
            self.adaptor: nn.Module | None = nn.Linear(s_dim, t_dim).to(probe.device) if s_dim != t_dim else None
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.helpers: dict[str, nn.Module] = {"adaptor": self.adaptor} if self.adaptor is not None else {}
        self.dims = {"teacher_features": t_dim, "student_features": s_dim}
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._stats = {"d_loss": 0.0, "teacher_as_teacher": 0.0, "student_as_teacher": 0.0, "steps": 0}

    def _student_features(self) -> torch.Tensor:
        f = self.s_tap[self.s_spec].flatten(1)
        return self.adaptor(f) if self.adaptor is not None else f

    def loss(self, ctx: StepContext) -> torch.Tensor:
        """Student step: logit L2 plus the adversarial term on dropped-out student features."""
        z_t = teacher_logits(self.teacher, ctx.inputs)
        f_t = self.t_tap[self.t_spec].flatten(1)
        f_s = self._student_features()
        f_adv = F.dropout(f_s, self.dropout, training=True)
        self._last = (f_t, f_s.detach(), f_adv.detach())
        adv = student_adversarial_loss(self.discriminator(f_adv))
        return logit_l2_loss(ctx.outputs, z_t) + self.adversarial_weight * adv

    def step_discriminator(self, ctx: StepContext) -> None:
        """after_step hook: one step of D's own optimiser on this step's features."""
        if self._last is None:
            return
        f_t, f_s, f_adv = self._last
        d_t, d_s, d_adv = self.discriminator(f_t), self.discriminator(f_s), self.discriminator(f_adv)
        loss = discriminator_loss(d_t, d_s, d_adv, self.sample_weight)
        self.optimizer.zero_grad(set_to_none=True)  # drops D grads left by the student's backward
        loss.backward()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for p in self.discriminator.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                    p.grad.div_(dist.get_world_size())
        self.optimizer.step()
        self._last = None
        with torch.no_grad():
            self._stats["d_loss"] += float(loss)
            self._stats["teacher_as_teacher"] += float((d_t > 0).float().mean())
            self._stats["student_as_teacher"] += float((d_s > 0).float().mean())
            self._stats["steps"] += 1

    def details(self) -> dict[str, object]:
        """JSON summary: taps, sizes, and D's mean loss / decisions over all steps."""
        n = max(int(self._stats["steps"]), 1)
        return {
            "feature_layer": self.t_spec,
            "student_feature_layer": self.s_spec,
            **self.dims,
            "adaptor": self.adaptor is not None,
            "discriminator_params": sum(p.numel() for p in self.discriminator.parameters()),
            "mean_discriminator_loss": round(self._stats["d_loss"] / n, 6),
            "mean_teacher_judged_teacher": round(self._stats["teacher_as_teacher"] / n, 4),
            "mean_student_judged_teacher": round(self._stats["student_as_teacher"] / n, 4),
        }

    def close(self) -> None:
        self.t_tap.close()
        self.s_tap.close()
