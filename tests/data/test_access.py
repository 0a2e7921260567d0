"""The data-access layer: every kind of split yields the same batches as the in-memory fast path."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from torchslim.data import DataSplits
from torchslim.data.access import (
    as_splits,
    batches,
    calibration_batches,
    first_inputs,
    first_samples,
    num_batches,
    num_samples,
)
from torchslim.errors import UserError


class Pairs(Dataset):
    """A user's map-style Dataset over the same tensors, with a transform (x * 2 + 1)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform=None) -> None:
        self.x, self.y, self.transform = x, y, transform or (lambda t: t)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


class Stream(IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y, strict=True))


def _xy(n: int = 10):
    return torch.arange(n * 3, dtype=torch.float32).view(n, 3), torch.arange(n) % 4


def _cat(split, batch_size=4, **kw):
    got = list(batches(split, batch_size, **kw))
    return torch.cat([x for x, _ in got]), torch.cat([y for _, y in got]), [len(x) for x, _ in got]


@pytest.mark.parametrize("kind", ["tensor", "map", "iterable", "loader"])
def test_every_kind_of_split_yields_the_same_examples(kind):
    x, y = _xy()
    split = {"tensor": TensorDataset(x, y), "map": Pairs(x, y), "iterable": Stream(x, y),
             "loader": DataLoader(Pairs(x, y), batch_size=4)}[kind]
    xs, ys, sizes = _cat(split)
    assert torch.equal(xs, x) and torch.equal(ys, y) and sizes == [4, 4, 2]
    assert num_samples(split) == (None if kind == "iterable" else 10)
    assert num_batches(split, 4) == (None if kind == "iterable" else 3)
    fx, fy = first_samples(split, 7)
    assert torch.equal(fx, x[:7]) and torch.equal(fy, y[:7])
    assert [len(b) for b in calibration_batches(split, 7, 3)] == [3, 3, 1]
    assert torch.equal(torch.cat(list(calibration_batches(split, 7, 3))), x[:7])


def test_order_is_honoured_for_map_style_and_the_transform_runs():
    x, y = _xy()
    order = [9, 0, 4, 4, 1]
    xs, ys, sizes = _cat(Pairs(x, y, transform=lambda t: t * 2 + 1), 2, order=order)
    assert torch.equal(xs, x[order] * 2 + 1) and torch.equal(ys, y[order]) and sizes == [2, 2, 1]
    fast, _, _ = _cat(TensorDataset(x, y), 2, order=order)
    assert torch.equal(fast, x[order])
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(5)).tolist()
    shuffled, labels, _ = _cat(Pairs(x, y), 4, shuffle=True, seed=5)
    assert torch.equal(shuffled, x[perm]) and torch.equal(labels, y[perm])


def test_a_dataloader_keeps_its_own_batch_size_and_collate():
    x, y = _xy()
    loader = DataLoader(Pairs(x, y), batch_size=3, collate_fn=lambda items: (
        torch.stack([a for a, _ in items]) * 10, torch.stack([b for _, b in items])))
    xs, _, sizes = _cat(loader, batch_size=100)
    assert sizes == [3, 3, 3, 1] and torch.equal(xs, x * 10)


def test_unlabelled_batches_and_bad_batches():
    x, _ = _xy()
    assert first_samples(DataLoader(x, batch_size=4), 5)[1] is None
    assert torch.equal(first_inputs(DataLoader(x, batch_size=4), 5), x[:5])
    with pytest.raises(UserError, match="a batch must be a tensor or a tuple"):
        list(batches(DataLoader([{"a": 1}], batch_size=1), 1))


def test_as_splits_takes_a_mapping_and_names_what_is_wrong():
    x, y = _xy()
    splits = as_splits({"train": TensorDataset(x, y), "test": DataLoader(Pairs(x, y))})
    assert isinstance(splits, DataSplits) and splits.val is None
    assert splits.input_shape == (3,) and splits.num_classes == 4 and splits.preprocessing is None
    with pytest.raises(UserError, match="data: unknown split 'valid' \\(known: train, val, test\\)"):
        as_splits({"train": TensorDataset(x, y), "valid": TensorDataset(x, y)})
    with pytest.raises(UserError, match="data: needs a 'train' split"):
        as_splits({"test": TensorDataset(x, y)})
    with pytest.raises(UserError, match="data: test: expected a torch Dataset or DataLoader, got list"):
        as_splits({"train": TensorDataset(x, y), "test": [1, 2]})
    with pytest.raises(UserError, match="data: the train split is empty"):
        as_splits({"train": TensorDataset(x[:0], y[:0])})
    with pytest.raises(UserError, match="expected a DataSplits or a mapping"):
        as_splits(TensorDataset(x, y))


def test_preprocessing_of_a_bundled_source():
    from torchslim.data import load_dataset

    splits = load_dataset("digits")
    pre = splits.preprocessing
    assert pre == {"pixel_scale": 1 / 16, "mean": list(splits.mean), "std": list(splits.std), "layout": "NCHW",
                   "channels": 1, "image_size": [8, 8]}
