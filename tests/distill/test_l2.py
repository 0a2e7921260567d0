"""Ba & Caruana 2014 logit regression against a hand-computed value."""

from __future__ import annotations

import pytest
import torch

from torchslim.distill import logit_l2_loss


def test_l2_on_logits_by_hand():
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # squared distances 1 + 4 = 5 and 9 + 16 = 25; half, averaged over 2 examples
    assert float(logit_l2_loss(s, t)) == pytest.approx(0.5 * (5 + 25) / 2)


def test_l2_gradient_is_the_logit_difference_over_batch():
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    logit_l2_loss(s, t).backward()
    torch.testing.assert_close(s.grad, (s.detach() - t) / 2)
