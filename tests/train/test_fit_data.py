"""fit and evaluate on the data users have (their own Datasets, DataLoaders, iterables), and the
mistakes in it that must be one clear line (issue 18): labels, BatchNorm batches of one, NaN."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from torchslim.errors import UserError
from torchslim.train import evaluate, fit


class Pairs(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class Stream(IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y, strict=True))


def _data(n: int = 40, k: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, :k].argmax(dim=1))


def _mlp(bn: bool = False, k: int = 3) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 8), *( [nn.BatchNorm1d(8)] if bn else []), nn.ReLU(), nn.Linear(8, k))


def test_a_users_map_style_dataset_trains_bit_identically_to_the_tensor_fast_path():
    x, y = _data()
    fast, mine = _mlp(), _mlp()
    fit(fast, TensorDataset(x, y), epochs=2, batch_size=8, progress=False)
    fit(mine, Pairs(x, y), epochs=2, batch_size=8, progress=False)
    for a, b in zip(fast.state_dict().values(), mine.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("as_loader", [True, False], ids=["dataloader", "iterable"])
def test_a_dataloader_or_iterable_trains_in_its_own_order_like_a_hand_written_sgd_loop(as_loader):
    x, y = _data()
    split = DataLoader(Pairs(x, y), batch_size=16) if as_loader else Stream(x, y)
    model, reference = _mlp(), _mlp()
    fit(model, split, epochs=2, batch_size=16, lr=0.1, momentum=0.0, weight_decay=0.0, schedule="constant",
        progress=False)
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(2):
        for start in range(0, len(x), 16):
            opt.zero_grad()
            F.cross_entropy(reference(x[start:start + 16]), y[start:start + 16]).backward()
            opt.step()
    for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_cosine_schedule_over_an_iterable_of_unknown_length_steps_per_epoch():
    x, y = _data()
    lrs = []
    fit(_mlp(), Stream(x, y), epochs=2, batch_size=20, lr=0.1, progress=False,
        after_step=[lambda ctx: lrs.append(None)])
    assert len(lrs) == 4  # 2 epochs x 2 batches of 20


def test_evaluate_reads_any_split_and_matches_the_tensor_path():
    x, y = _data(n=50)
    model = _mlp()
    expected = int((model(x).argmax(1) == y).sum()) / len(y)
    for split in (TensorDataset(x, y), Pairs(x, y), Stream(x, y), DataLoader(Pairs(x, y), batch_size=7)):
        assert evaluate(model, split) == pytest.approx(expected, abs=1e-12)


def test_batchnorm_last_batch_of_one_is_skipped_with_one_warning():
    x, y = _data(n=17)  # 17 = 2 x 8 + 1
    sizes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(_mlp(bn=True), TensorDataset(x, y), epochs=2, batch_size=8, progress=False,
            after_step=[lambda ctx: sizes.append(len(ctx.inputs))])
    assert sizes == [8, 8, 8, 8]
    assert len([w for w in caught if "skipping a training batch of 1 example" in str(w.message)]) == 1
    with warnings.catch_warnings(record=True) as caught:  # a DataLoader's batch of one is skipped as it comes
        warnings.simplefilter("always")
        fit(_mlp(bn=True), DataLoader(Pairs(x, y), batch_size=8), epochs=2, progress=False,
            after_step=[lambda ctx: sizes.append(len(ctx.inputs))])
    assert sizes == [8] * 8
    assert len([w for w in caught if "skipping a training batch of 1 example" in str(w.message)]) == 1
    with pytest.warns(UserWarning, match="batch of 1"), pytest.raises(UserError, match="no batch of 2 or more"):
        fit(_mlp(bn=True), TensorDataset(x[:1], y[:1]), epochs=1, progress=False)
    fit(_mlp(bn=False), TensorDataset(x, y), epochs=1, batch_size=8, progress=False,
        after_step=[lambda ctx: sizes.append(len(ctx.inputs))])
    assert sizes[-3:] == [8, 8, 1]  # without BatchNorm nothing is dropped


def test_label_mistakes_are_one_line():
    x, y = _data(n=20)
    y_bad = y.clone()
    y_bad[[2, 5, 7]] = 3  # the model has 3 outputs: 0..2
    with pytest.raises(UserError, match=r"^fit: label 3 is outside the model's 3 classes \(0\.\.2\): "
                                        r"3 examples in train_data$"):
        fit(_mlp(), TensorDataset(x, y_bad), epochs=1, progress=False)
    y_bad[0] = -1
    with pytest.raises(UserError, match=r"label -1 is outside .* 1 examples in this batch$"):
        fit(_mlp(), DataLoader(Pairs(x, y_bad), batch_size=20), epochs=1, progress=False)
    with pytest.raises(UserError, match=r"^fit: labels are float32; the default cross-entropy loss needs integer"):
        fit(_mlp(), TensorDataset(x, y.float()), epochs=1, progress=False)
    with pytest.raises(UserError, match="fit: the batches carry no labels"):
        fit(_mlp(), DataLoader(x, batch_size=5), epochs=1, progress=False)


def test_float_targets_train_with_a_users_loss():
    x, _ = _data(n=20)
    target = x[:, :2].sum(1, keepdim=True)
    model = nn.Linear(6, 1)
    history = fit(model, TensorDataset(x, target), epochs=30, batch_size=20, lr=0.1, weight_decay=0.0,
                  loss_fn=lambda ctx: F.mse_loss(ctx.outputs, ctx.targets), progress=False)
    assert history.train_loss[-1] < 0.05 * history.train_loss[0]


def test_non_finite_loss_stops_fit_with_one_line():
    x, y = _data(n=20)
    x[13, 2] = float("nan")
    with pytest.raises(UserError, match=r"^fit: loss is nan at epoch 1, step \d+ \(lr 0\.05\); lower lr or check"):
        fit(_mlp(), TensorDataset(x, y), epochs=1, batch_size=4, progress=False)
