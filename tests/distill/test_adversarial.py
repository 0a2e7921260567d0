"""Adversarial compression (Belagiannis et al. 2018): loss values and signs by hand, and the
discriminator's own optimiser stepping inside an after_step hook."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from torchslim.distill import AdversarialDistiller, discriminator_loss, make_discriminator, student_adversarial_loss
from torchslim.train import StepContext


def _log1pexp(x: float) -> float:  # -log sigmoid(-x) = BCE(x, label 0); BCE(x, 1) = _log1pexp(-x)
    return math.log1p(math.exp(x))


def test_discriminator_loss_by_hand():
    d_t, d_s, d_a = torch.tensor([[2.0]]), torch.tensor([[-1.0]]), torch.tensor([[0.5]])
    want = _log1pexp(-2.0) + _log1pexp(-1.0) + 0.3 * _log1pexp(-0.5)
    assert float(discriminator_loss(d_t, d_s, d_a, sample_weight=0.3)) == pytest.approx(want, rel=1e-6)
    zero = torch.zeros(4, 1)
    assert float(discriminator_loss(zero, zero, zero)) == pytest.approx(3 * math.log(2), rel=1e-6)


def test_loss_signs_teacher_is_one_student_is_zero_adversarial_samples_are_one():
    big = torch.full((3, 1), 6.0)
    right = discriminator_loss(big, -big, big, sample_weight=1.0)  # D is right on every term
    assert float(right) < 0.01
    for wrong in (discriminator_loss(-big, -big, big), discriminator_loss(big, big, big),
                  discriminator_loss(big, -big, -big)):
        assert float(wrong) > 5.9  # each wrong term costs ~6 nats
    # the student wants D to call it teacher: its loss falls as D's logit rises
    d = torch.tensor([[-1.0], [0.0], [3.0]], requires_grad=True)
    loss = student_adversarial_loss(d)
    assert loss.item() == pytest.approx((_log1pexp(1.0) + _log1pexp(0.0) + _log1pexp(-3.0)) / 3, rel=1e-6)
    loss.backward()
    assert (d.grad < 0).all()


def test_discriminator_steps_with_its_own_optimizer_and_learns_to_separate():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    student = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(32, 4)
    # sample_weight 0: a plain GAN discriminator (with dropout 0 the adversarial samples would be
    # the student features themselves, labelled teacher, and cancel the student term exactly)
    adv = AdversarialDistiller(student, teacher, x[:8], hidden=(16,), lr=1e-2, dropout=0.0, sample_weight=0.0)
    assert adv.dims == {"teacher_features": 6, "student_features": 5} and isinstance(adv.adaptor, nn.Linear)
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    d_before = [p.clone() for p in adv.discriminator.parameters()]
    losses = []
    for step in range(60):
        ctx = StepContext(student, x, torch.zeros(32, dtype=torch.long), student(x), 0, step)
        loss = adv.loss(ctx)  # student loss: logit L2 + adversarial term
        assert loss.requires_grad
        adv.step_discriminator(ctx)
        losses.append(adv._stats["d_loss"])
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in student_before.items())  # D's step only
    assert any(not torch.equal(a, b) for a, b in zip(d_before, adv.discriminator.parameters(), strict=True))
    details = adv.details()
    # the student is frozen here, so D learns to tell the two feature sets apart
    with torch.no_grad():
        teacher(x)
        student(x)
        f_t = adv.t_tap[adv.t_spec]
        f_s = adv.adaptor(adv.s_tap[adv.s_spec])
        assert (adv.discriminator(f_t) > 0).float().mean() > 0.9
        assert (adv.discriminator(f_s) < 0).float().mean() > 0.9
    assert details["feature_layer"] == "2:input" and details["adaptor"] is True
    adv.close()
    assert not teacher[2]._forward_pre_hooks


def test_make_discriminator_shape():
    d = make_discriminator(10, (8, 4))
    assert d(torch.zeros(3, 10)).shape == (3, 1)
    assert [m.out_features for m in d if isinstance(m, nn.Linear)] == [8, 4, 1]
