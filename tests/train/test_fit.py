from __future__ import annotations

import io
import math
import re
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.data import load_dataset
from torchslim.errors import UserError
from torchslim.train import StepContext, cross_entropy, evaluate, fit
from torchslim.train.optim import make_optimizer, make_schedule


def _toy(n: int = 60, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())


def _mlp(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def _lenet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def test_lenet_learns_mnist5k():
    data = load_dataset("mnist5k")
    model = _lenet()
    history = fit(model, data.train, epochs=2, val_data=data.val, progress=False)
    accuracy = evaluate(model, data.test)
    print(f"LeNet mnist5k: test accuracy {accuracy:.3f}, seconds/epoch {history.epoch_seconds}")
    assert accuracy > 0.90
    assert history.val_accuracy[-1] == evaluate(model, data.val)
    assert history.train_loss[1] < history.train_loss[0] < math.log(10)
    assert len(history.epoch_seconds) == 2 and all(s > 0 for s in history.epoch_seconds)
    assert history.to_dict() == {
        "train_loss": history.train_loss,
        "val_accuracy": history.val_accuracy,
        "epoch_seconds": history.epoch_seconds,
    }


def test_same_seed_gives_bit_identical_weights():
    runs = []
    for seed in (0, 0, 1):
        model = _mlp(dropout=0.2)  # dropout draws from the global RNG too
        fit(model, _toy(), epochs=2, batch_size=8, seed=seed, progress=False)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def _hand_smoothed_ce(logits: list[float], target: int, eps: float) -> float:
    lse = math.log(sum(math.exp(v) for v in logits))
    logp = [v - lse for v in logits]
    return -(1 - eps) * logp[target] - eps / len(logits) * sum(logp)


def test_label_smoothing_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, -0.5]])
    targets = torch.tensor([0, 2])
    ctx = StepContext(nn.Identity(), logits, targets, logits, epoch=0, step=0)
    expected = (
        _hand_smoothed_ce([2.0, 0.0, -1.0], 0, 0.1) + _hand_smoothed_ce([0.5, 1.5, -0.5], 2, 0.1)
    ) / 2
    assert cross_entropy(0.1)(ctx).item() == pytest.approx(expected, rel=1e-6)
    # and it is the loss fit() optimises and reports: lr=0 leaves the model fixed
    model = nn.Linear(1, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([2.0, 0.0, -1.0]))
    data = TensorDataset(torch.zeros(3, 1), torch.tensor([0, 1, 2]))
    history = fit(model, data, epochs=1, lr=0.0, label_smoothing=0.1, progress=False)
    hand = sum(_hand_smoothed_ce([2.0, 0.0, -1.0], t, 0.1) for t in range(3)) / 3
    assert history.train_loss[0] == pytest.approx(hand, rel=1e-6)


def test_l2_extra_loss_equals_sgd_weight_decay():
    wd = 0.01
    decayed, penalised = _mlp(), _mlp()
    fit(decayed, _toy(), epochs=2, batch_size=8, weight_decay=wd, progress=False)

    def l2(ctx: StepContext) -> torch.Tensor:  # gradient wd * p, SGD's coupled decay
        return 0.5 * wd * sum((p**2).sum() for p in ctx.model.parameters())

    fit(
        penalised,
        _toy(),
        epochs=2,
        batch_size=8,
        weight_decay=0.0,
        extra_losses=[l2],
        progress=False,
    )
    for a, b in zip(decayed.parameters(), penalised.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    plain = _mlp()
    fit(plain, _toy(), epochs=2, batch_size=8, weight_decay=0.0, progress=False)
    assert not torch.allclose(plain[0].weight, decayed[0].weight, atol=1e-4)


def test_hooks_get_the_right_context_after_each_step():
    model, seen = _mlp(), []
    data = _toy(n=60)

    def record(ctx: StepContext) -> None:
        seen.append(ctx)
        with torch.no_grad():  # mask enforcement: must run after optimizer.step()
            ctx.model[0].weight[0].zero_()

    fit(model, data, epochs=3, batch_size=16, weight_decay=0.0, after_step=[record], progress=False)
    assert [c.step for c in seen] == list(range(12))  # 3 epochs x ceil(60 / 16)
    assert [c.epoch for c in seen] == [0] * 4 + [1] * 4 + [2] * 4
    assert [len(c.targets) for c in seen[:4]] == [16, 16, 16, 12]
    assert all(c.model is model and c.outputs.shape == (len(c.targets), 3) for c in seen)
    assert all(c.loss is not None and not c.loss.requires_grad for c in seen)
    # the batch is data the hook can recompute the loss from
    assert all(
        torch.equal(c.targets, (c.inputs[:, 0] > 0).long() + (c.inputs[:, 1] > 0).long())
        for c in seen
    )
    assert (
        torch.count_nonzero(model[0].weight[0]) == 0 and torch.count_nonzero(model[0].weight[1]) > 0
    )


def test_loss_fn_replaces_the_default():
    model = _mlp()
    before = [p.clone() for p in model.parameters()]
    history = fit(
        model,
        _toy(),
        epochs=1,
        weight_decay=0.0,
        loss_fn=lambda ctx: 0.0 * ctx.outputs.sum(),
        progress=False,
    )
    assert history.train_loss == [0.0]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_applied_learning_rate_follows_the_closed_form(schedule):
    # loss = sum(w) has gradient 1, so plain SGD moves w by exactly -lr_t at step t
    model = nn.Linear(1, 1, bias=False)
    data = TensorDataset(torch.zeros(40, 1), torch.zeros(40, dtype=torch.long))
    weights = [model.weight.item()]
    fit(
        model,
        data,
        epochs=2,
        batch_size=10,
        lr=0.5,
        momentum=0.0,
        weight_decay=0.0,
        schedule=schedule,
        loss_fn=lambda ctx: ctx.model.weight.sum(),
        after_step=[lambda ctx: weights.append(ctx.model.weight.item())],
        progress=False,
    )
    total = 8
    factor = (
        (lambda t: 0.5 * (1 + math.cos(math.pi * t / total)))
        if schedule == "cosine"
        else (lambda t: 1.0)
    )
    steps = [weights[t] - weights[t + 1] for t in range(total)]
    assert steps == pytest.approx([0.5 * factor(t) for t in range(total)], abs=1e-6)


def test_schedule_lrs_match_closed_form_exactly():
    opt = make_optimizer(
        [nn.Parameter(torch.zeros(1))], "sgd", lr=0.1, momentum=0.9, weight_decay=0.0
    )
    sched = make_schedule(opt, "cosine", total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == [0.1 * (0.5 * (1 + math.cos(math.pi * t / 10))) for t in range(10)]
    assert sched.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_full_batch_fit_equals_a_plain_torch_loop(optimizer):
    data = _toy(n=32)
    trained, reference = _mlp(), _mlp()
    fit(
        trained,
        data,
        epochs=5,
        batch_size=32,
        lr=0.01,
        optimizer=optimizer,
        schedule="constant",
        progress=False,
    )
    opt = (
        torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        if optimizer == "sgd"
        else torch.optim.AdamW(reference.parameters(), lr=0.01, weight_decay=5e-4)
    )
    x, y = data.tensors
    for _ in range(5):
        loss = F.cross_entropy(reference(x), y)  # a full batch is a sum, so order is immaterial
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(trained.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_shows_loss_and_lr_on_a_terminal(monkeypatch, progress):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fit(_mlp(), _toy(), epochs=1, batch_size=30, progress=progress)
    shown = terminal.getvalue()
    if progress:  # a bar while the epoch runs (tqdm redraws at most every 0.1 s), then the epoch line
        assert "epoch 1/1:" in shown and "0/2" in shown and "step/s" in shown
        assert re.search(r"\repoch 1/1, [0-9.]+ s: loss [0-9.]+\n$", shown)
    else:
        assert shown == ""


def test_modes_restored_and_one_plain_line_per_epoch_without_tty(capsys):
    model = _mlp(dropout=0.5)
    model[2].eval()  # a caller's frozen submodule stays as it was
    fit(model, _toy(), epochs=1, progress=True)
    assert model.training and not model[2].training
    captured = capsys.readouterr()
    assert captured.out == "" and "\r" not in captured.err
    assert re.fullmatch(r"epoch 1/1, [0-9.]+ s: loss [0-9.]+\n", captured.err)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=0), "epochs must be a positive int"),
        (dict(epochs=1, batch_size=0), "batch_size must be a positive int"),
        (dict(epochs=1, optimizer="lion"), "unknown optimizer 'lion'; known: sgd, adamw"),
        (dict(epochs=1, schedule="step"), "unknown schedule 'step'; known: cosine, constant"),
        (dict(epochs=1, label_smoothing=1.0), "label_smoothing must be in"),
        (dict(epochs=1, lr=-1.0), "lr must be a finite number >= 0, got -1.0"),
        (dict(epochs=1, lr=float("nan")), "lr must be a finite number >= 0, got nan"),
        (dict(epochs=1, lr=float("inf")), "lr must be a finite number >= 0, got inf"),
        (dict(epochs=1, weight_decay=-1.0), "weight_decay must be a finite number >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(UserError, match=message):
        fit(_mlp(), _toy(), progress=False, **kwargs)
    with pytest.raises(UserError, match=r"train_data: expected a torch Dataset or DataLoader \(e.g. splits.train\), got DataSplits"):
        fit(_mlp(), load_dataset("digits"), epochs=1)
    with pytest.raises(UserError, match="train_data is empty"):
        fit(_mlp(), TensorDataset(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long)), epochs=1)
