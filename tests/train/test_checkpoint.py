from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torchslim.errors import UserError
from torchslim.train import StepContext, fit

ARGS = dict(epochs=3, batch_size=8, seed=2, progress=False)


def _data() -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(48, 5, generator=gen)
    return TensorDataset(x, (x.sum(dim=1) > 0).long())


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 2))


class Interrupt(Exception):
    pass


def _interrupt_at(step: int):
    def hook(ctx: StepContext) -> None:
        if ctx.step == step:
            raise Interrupt

    return hook


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path):
    straight = _model()
    full = fit(straight, _data(), **ARGS)

    path = tmp_path / "ckpt" / "run.pt"
    with pytest.raises(Interrupt):  # 6 steps per epoch: dies in the middle of epoch 2
        fit(_model(), _data(), checkpoint_path=path, after_step=[_interrupt_at(8)], **ARGS)
    saved = torch.load(path, weights_only=True)
    assert saved["epochs_done"] == 1 and len(saved["history"]["train_loss"]) == 1

    resumed_model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 2))
    steps: list[int] = []
    resumed = fit(
        resumed_model,
        _data(),
        checkpoint_path=path,
        after_step=[lambda c: steps.append(c.step)],
        **ARGS,
    )
    assert steps == list(range(6, 18))  # epochs 1 and 2 only
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k
    assert resumed.train_loss == full.train_loss
    assert [p.name for p in path.parent.iterdir()] == ["run.pt"]  # no temp files left behind
    assert torch.load(path, weights_only=True)["epochs_done"] == 3


def test_finished_checkpoint_restores_without_training(tmp_path):
    path = tmp_path / "run.pt"
    trained = _model()
    fit(trained, _data(), checkpoint_path=path, **ARGS)
    fresh, steps = _model(), []
    fit(fresh, _data(), checkpoint_path=path, after_step=[lambda c: steps.append(c.step)], **ARGS)
    assert steps == []
    assert all(
        torch.equal(a, b) for a, b in zip(trained.parameters(), fresh.parameters(), strict=True)
    )


def test_mismatched_checkpoints_are_user_errors(tmp_path):
    path = tmp_path / "run.pt"
    fit(_model(), _data(), checkpoint_path=path, **{**ARGS, "epochs": 1})
    with pytest.raises(
        UserError, match=r"run.pt was written with epochs=1 \(now 3\), lr=0.05 \(now 0.1\)"
    ):
        fit(_model(), _data(), checkpoint_path=path, lr=0.1, **ARGS)
    with pytest.raises(UserError, match="run.pt does not match the model"):
        fit(nn.Linear(5, 2), _data(), checkpoint_path=path, **{**ARGS, "epochs": 1})
    path.write_bytes(b"truncated")
    with pytest.raises(UserError, match="checkpoint .*run.pt is unreadable"):
        fit(_model(), _data(), checkpoint_path=path, **ARGS)
