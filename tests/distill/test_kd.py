"""Hinton et al. 2015 soft-target loss against values computed by hand with ``math``."""

from __future__ import annotations

import math

import pytest
import torch

from torchslim.distill import kd_loss, soft_target_loss
from torchslim.errors import UserError


def _softmax(v: list[float]) -> list[float]:
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def _hand_kd(s: list[float], t: list[float], y: int, temp: float, alpha: float) -> float:
    p = _softmax([x / temp for x in t])
    q = _softmax([x / temp for x in s])
    kl = sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
    ce = -math.log(_softmax(s)[y])
    return alpha * temp**2 * kl + (1 - alpha) * ce


S = [[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]
T = [[3.0, 1.0, 0.0], [0.0, 2.0, -2.0]]
Y = [2, 1]


@pytest.mark.parametrize("temp", [1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_kd_matches_hand_computation(temp, alpha):
    got = kd_loss(torch.tensor(S), torch.tensor(T), torch.tensor(Y), temperature=temp, alpha=alpha)
    want = sum(_hand_kd(s, t, y, temp, alpha) for s, t, y in zip(S, T, Y, strict=True)) / 2
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_soft_term_is_t_squared_times_kl_and_zero_at_a_perfect_match():
    s, t = torch.tensor(S), torch.tensor(T)
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / 3, 1), torch.softmax(t / 3, 1), reduction="batchmean")
    assert float(soft_target_loss(s, t, 3.0)) == pytest.approx(9 * float(kl), rel=1e-6)
    assert float(soft_target_loss(t, t, 3.0)) == pytest.approx(0.0, abs=1e-7)


def test_t_squared_keeps_soft_gradients_constant_at_high_temperature():
    """Hinton et al. sec. 2.1: for large T, d(T^2 KL)/dz_s -> (z_s - z_t) / K (zero-mean
    logits), independent of T; without the T^2 factor it would shrink as 1/T^2."""
    t = torch.tensor([[1.0, -0.5, -0.5]])
    grads = []
    for temp in (50.0, 100.0):
        s = torch.tensor([[0.2, 0.3, -0.5]], requires_grad=True)
        soft_target_loss(s, t, temp).backward()
        grads.append(s.grad.clone())
    expected = (torch.tensor([[0.2, 0.3, -0.5]]) - t) / 3
    torch.testing.assert_close(grads[0], expected, atol=2e-3, rtol=0)
    torch.testing.assert_close(grads[1], expected, atol=1e-3, rtol=0)


def test_kd_errors_are_user_errors():
    s, t = torch.tensor(S), torch.tensor(T)
    assert float(kd_loss(s, t, None, alpha=1.0)) > 0  # soft targets alone need no labels
    with pytest.raises(UserError, match="need labels"):
        kd_loss(s, t, None, alpha=0.5)
    with pytest.raises(UserError, match="same number of classes"):
        kd_loss(s, t[:, :2], torch.tensor(Y))
    with pytest.raises(UserError, match="temperature"):
        kd_loss(s, t, torch.tensor(Y), temperature=0.0)
