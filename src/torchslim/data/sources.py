"""One source per split: a recipe's ``data: {train: SRC, val: SRC, test: SRC}``.

Each split a source is given for is that whole source (a held-out folder, a test ``.npz``);
the splits not given are carved from the train source as usual (``val_fraction`` /
``test_fraction``). Every split is standardised with the *train* source's mean and std, as a
single source is: a val or test source is re-standardised from its own constants, so the
model sees the same input distribution it will be deployed with (``DataSplits.preprocessing``).
Sources must agree on input shape and classes (same names, same order); the error names the split.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from torchslim.data.folder import ImageFolderSplit
from torchslim.data.spec import load_data
from torchslim.data.splits import DataSplits
from torchslim.errors import UserError

# Only file sources can serve as a whole split; a bundled dataset is split by its own fixed fractions.
HELD_OUT_KINDS = ("npz:", "folder:")


def load_split_sources(train: str, val: str | None = None, test: str | None = None, **kwargs: Any) -> DataSplits:
    """DataSplits with ``train`` from its source and ``val`` / ``test`` from theirs when given.

    ``kwargs`` go to every :func:`~torchslim.data.load_data` call (``image_size``, ``channels``,
    ``seed``, ``num_workers``)."""
    held_out = {"val": val, "test": test}
    for split, spec in held_out.items():
        if spec is not None and not spec.removeprefix("data:").startswith(HELD_OUT_KINDS):
            raise UserError(f"data: {split}: {spec!r} must be an npz: or folder: source (a whole file or folder)")
    file_train = train.removeprefix("data:").startswith(HELD_OUT_KINDS)
    fractions = {f"{split}_fraction": 0.0 for split, spec in held_out.items() if spec is not None and file_train}
    base = load_data(train, **_options(train, kwargs), **fractions)
    splits = {}
    for split, spec in held_out.items():
        if spec is None:
            continue
        whole = load_data(spec, **_options(spec, kwargs), val_fraction=0.0, test_fraction=0.0)
        _check_agrees(base, whole, split, spec)
        splits[split] = _restandardised(whole.train, whole, base)
    return replace(base, **splits)


def _options(spec: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without ``num_workers`` for a source that is not streamed (only folders decode per batch)."""
    if spec.removeprefix("data:").startswith("folder:"):
        return kwargs
    return {k: v for k, v in kwargs.items() if k != "num_workers"}


def _check_agrees(base: DataSplits, other: DataSplits, split: str, spec: str) -> None:
    if other.input_shape != base.input_shape:
        raise UserError(f"data: {split}: {spec!r} gives inputs of shape {other.input_shape}, the train source "
                        f"{base.input_shape}")
    if tuple(other.class_names) != tuple(base.class_names):
        raise UserError(f"data: {split}: {spec!r} has classes {list(other.class_names)}, the train source "
                        f"{list(base.class_names)}")


def _restandardised(split: Dataset, own: DataSplits, base: DataSplits) -> Dataset:
    """``split`` (standardised with ``own``'s constants) standardised with ``base``'s instead."""
    mean, std = torch.tensor(base.mean), torch.tensor(base.std)
    if isinstance(split, ImageFolderSplit):  # keeps streaming: the split standardises as it decodes
        return ImageFolderSplit(split.items, split.image_size, split.grey, split.channels, mean, std,
                                split.num_workers)
    if isinstance(split, TensorDataset):
        x, y = split.tensors
        shape = (1, -1, 1, 1)
        raw = x * torch.tensor(own.std).view(shape) + torch.tensor(own.mean).view(shape)  # pixel_scale-ed
        return TensorDataset(((raw - mean.view(shape)) / std.view(shape)).float(), y)
    raise TypeError(f"unexpected split type {type(split).__name__}")  # only the sources above reach here
