from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from torchslim.errors import UserError
from torchslim.train import evaluate


class FirstFeatureClassifier(nn.Module):
    """Predicts class round(x[0]) as a one-hot logit; records grad mode and training flag."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(1)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((torch.is_grad_enabled(), self.training))
        return nn.functional.one_hot(x[:, 0].round().long(), 4).float()


class PairList(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def test_accuracy_matches_hand_count_for_any_batch_size():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [1.0], [2.0], [0.0]])
    y = torch.tensor([0, 1, 2, 0, 0, 2, 3])  # predictions right at indices 0, 1, 2, 5
    model = FirstFeatureClassifier()
    for batch_size in (1, 3, 256):
        assert evaluate(model, TensorDataset(x, y), batch_size=batch_size) == 4 / 7
    assert evaluate(model, PairList(x, y)) == 4 / 7  # any map-style dataset
    assert all(grad is False and training is False for grad, training in model.calls)


def test_restores_each_submodule_mode():
    model = FirstFeatureClassifier()
    model.bn.eval()
    evaluate(model, TensorDataset(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)))
    assert model.training and not model.bn.training


def test_empty_data_is_a_user_error():
    with pytest.raises(UserError, match="evaluate: data is empty"):
        evaluate(
            nn.Linear(1, 2), TensorDataset(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long))
        )
