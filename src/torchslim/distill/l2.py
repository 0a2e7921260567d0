"""Logit regression (Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?").

The student regresses the teacher's logits (pre-softmax outputs) with an L2 loss, no labels:

    L = (1 / 2B) sum_b || z_s(x_b) - z_t(x_b) ||_2^2          (logits (B, K))

Matching logits rather than probabilities keeps the information the softmax squashes
(the paper's argument, section 2.2). The adversarial method (``adversarial.py``) uses the same
term as its similarity loss.
"""

from __future__ import annotations

import torch

from torchslim.distill.kd import check_logits


def logit_l2_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Half the squared L2 distance between logit vectors, averaged over the batch."""
    check_logits(student_logits, teacher_logits)
    diff = (student_logits - teacher_logits).flatten(1)
    return 0.5 * diff.pow(2).sum(dim=1).mean()
