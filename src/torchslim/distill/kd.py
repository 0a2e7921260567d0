"""Knowledge distillation with softened softmax targets (Hinton, Vinyals & Dean 2015,
"Distilling the Knowledge in a Neural Network").

With student logits z_s, teacher logits z_t (B, K), temperature T and weight alpha:

    p_t = softmax(z_t / T),  log q_s = log_softmax(z_s / T)
    L_soft = T^2 * (1/B) sum_b KL(p_t || q_s)                   (soft targets)
    L_hard = (1/B) sum_b -log softmax(z_s)[y_b]                 (hard targets, T = 1)
    L = alpha * L_soft + (1 - alpha) * L_hard

The T^2 factor (paper, section 2) keeps the soft-target gradients, which scale as 1/T^2,
at the same magnitude as the hard-target ones when T changes. KL(p_t || q_s) differs from
the paper's cross-entropy H(p_t, q_s) only by the teacher's entropy, a constant in the
student, so the gradients are the same and a perfect match gives a loss of 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchslim.errors import UserError


def check_kd_args(temperature: float, alpha: float) -> None:
    if not temperature > 0:
        raise UserError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"alpha must be in [0, 1], got {alpha}")


def check_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.shape != teacher_logits.shape:
        raise UserError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ in shape (same number of classes needed)"
        )


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * mean over the batch of KL(softmax(z_t / T) || softmax(z_s / T)); logits (B, K)."""
    check_logits(student_logits, teacher_logits)
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """alpha * T^2 * KL(p_t || q_s) + (1 - alpha) * CE(z_s, y); logits (B, K), targets (B,).

    ``targets`` may be None only with alpha = 1 (soft targets alone need no labels).
    """
    check_kd_args(temperature, alpha)
    loss = alpha * soft_target_loss(student_logits, teacher_logits, temperature)
    if alpha < 1.0:
        if targets is None:
            raise UserError("kd: alpha < 1 mixes in hard targets, which need labels")
        loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits, targets)
    return loss
