"""``distill_`` end to end on tiny models and the bundled 8x8 digits: against hand-written
reference loops, label-independence oracles, and the teacher left exactly as it was."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.data import load_dataset
from torchslim.distill import distill_
from torchslim.errors import UserError
from torchslim.train import evaluate, fit


@functools.lru_cache(maxsize=1)
def _digits_and_teacher() -> tuple[object, dict[str, torch.Tensor]]:
    data = load_dataset("digits")
    teacher = _teacher()
    fit(teacher, data.train, epochs=6, lr=0.05, progress=False)
    return data, {k: v.clone() for k, v in teacher.state_dict().items()}


def _teacher() -> nn.Module:
    torch.manual_seed(0)  # dropout: a teacher left in train mode would give different targets
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))


def _student(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))


def _setup() -> tuple[object, nn.Module]:
    data, state = _digits_and_teacher()
    teacher = _teacher()
    teacher.load_state_dict(state)
    return data, teacher.train()  # the caller's model is in train mode; distill_ must not care


FIT = {"epochs": 3, "batch_size": 32, "seed": 3}


def test_kd_equals_a_hand_written_loop_and_leaves_the_teacher_untouched():
    data, teacher = _setup()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = distill_(_student(), teacher, data.train, "kd", lr=0.05, temperature=3.0, alpha=0.7, **FIT)
    assert teacher.training and all(m.training for m in teacher.modules())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in teacher.parameters())

    reference, frozen = _student(), _teacher()
    frozen.load_state_dict(before)
    frozen.eval()

    def loss(ctx):  # Hinton et al. 2015 written out
        with torch.no_grad():
            z_t = frozen(ctx.inputs)
        soft = F.kl_div(F.log_softmax(ctx.outputs / 3, 1), F.softmax(z_t / 3, 1), reduction="batchmean")
        return 0.7 * 9 * soft + 0.3 * F.cross_entropy(ctx.outputs, ctx.targets)

    fit(reference, data.train, lr=0.05, loss_fn=loss, progress=False, **FIT)
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(student.state_dict()[k], v, rtol=0, atol=1e-6)
    assert evaluate(student, data.test) > 0.85


@pytest.mark.parametrize("method, lr", [("l2", 0.005), ("adversarial", 0.005)])
def test_label_free_methods_ignore_labels_and_learn_from_the_teacher(method, lr):
    data, teacher = _setup()
    x, y = data.train.tensors
    scrambled = TensorDataset(x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))])
    real = distill_(_student(), teacher, data.train, method, lr=lr, **FIT)
    fake = distill_(_student(), teacher, scrambled, method, lr=lr, **FIT)
    for k, v in real.state_dict().items():
        assert torch.equal(v, fake.state_dict()[k]), k  # labels never enter the loss
    assert evaluate(fake, data.test) > 0.8  # scrambled labels, yet it learnt the digits


def test_fitnets_two_stages_and_data_splits_input():
    data, teacher = _setup()
    student = _student()
    untrained_head = student[3].weight.clone()
    from torchslim.distill import run_distillation
    from torchslim.distill.config import FinetuneConfig

    config = FinetuneConfig(distill="fitnets", hint_layer="2", guided_layer="2", hint_epochs=2, epochs=3,
                            lr=0.05, batch_size=32)
    history, details = run_distillation(student, teacher, data.train, config, val_data=data.val, seed=3)
    assert details["regressor"] == "Linear" and details["stage1_trained_params"] == 64 * 12 + 12
    assert details["stage1_hint_loss"][-1] < details["stage1_hint_loss"][0]
    assert len(history.val_accuracy) == 3 and not torch.equal(untrained_head, student[3].weight)
    assert evaluate(student, data.test) > 0.85
    # DataSplits in, val scored per epoch: distill_ takes .train and .val
    assert distill_(_student(), teacher, data, "none", epochs=1, lr=0.05) is not None


def test_user_errors_name_the_field():
    data, teacher = _setup()
    with pytest.raises(UserError, match="field 'temperature' must be > 0"):
        distill_(_student(), teacher, data, "kd", temperature=0)
    with pytest.raises(UserError, match="unknown field 'temprature'"):
        distill_(_student(), teacher, data, "kd", temprature=2)
    with pytest.raises(UserError, match="field 'distill' must be one of"):
        distill_(_student(), teacher, data, "hinton")
    with pytest.raises(UserError, match="hint_layer"):
        distill_(_student(), teacher, data, "fitnets")
    with pytest.raises(UserError, match="needs a teacher"):
        distill_(_student(), None, data, "kd")
    with pytest.raises(UserError, match=r"fit: loss is (nan|inf) at epoch 1, step \d+ \(lr 25\); lower lr"):
        distill_(_student(), teacher, data, "l2", lr=50.0, epochs=1)
