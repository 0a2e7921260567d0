"""One way to read a split, whatever the user has: every technique that trains, calibrates or
evaluates reads data through these functions, never through ``.tensors``.

A split is any of
- a ``TensorDataset`` of (inputs (N, ...), labels (N,)): sliced a whole batch at a time, which
  is several times faster than per-example indexing plus collate for small images;
- a map-style ``Dataset`` yielding (input, label) pairs (the user's transforms): batched by a
  ``DataLoader`` in the order asked for, with ``dataset.num_workers`` worker processes if the
  dataset sets that attribute (the image-folder source does);
- an ``IterableDataset``: batched by a ``DataLoader`` in its own order;
- a ``DataLoader``: used exactly as given (its batch size, sampler, workers and collate).

A batch is a tensor of inputs, or a tuple/list whose first two items are inputs and labels
(labels may be any tensor: class indices, regression targets, masks).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from torchslim.errors import UserError

SPLIT_NAMES = ("train", "val", "test")


def check_split(split: Any, where: str) -> None:
    """UserError unless ``split`` is a Dataset or a DataLoader."""
    if not isinstance(split, (Dataset, DataLoader)):
        hint = " (e.g. splits.train)" if hasattr(split, "train") else ""
        raise UserError(f"{where}: expected a torch Dataset or DataLoader{hint}, got {type(split).__name__}")


def is_streamed(split: Any) -> bool:
    """True when the split decides its own order (a DataLoader or an IterableDataset)."""
    return isinstance(split, (DataLoader, IterableDataset))


def num_samples(split: Any) -> int | None:
    """Number of examples, or None when the split does not say (an iterable without len)."""
    if isinstance(split, DataLoader):
        if isinstance(split.dataset, IterableDataset):
            return None
        try:
            return len(split.sampler)  # type: ignore[arg-type]
        except TypeError:
            return None
    try:
        return len(split)  # type: ignore[arg-type]
    except TypeError:
        return None


def num_batches(split: Any, batch_size: int) -> int | None:
    """Batches per pass at ``batch_size`` (a DataLoader's own when it has one), or None if unknown."""
    if isinstance(split, DataLoader):
        try:
            return len(split)
        except TypeError:
            return None
    n = num_samples(split)
    return None if n is None else -(-n // batch_size)


def unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs, labels or None) of one collated batch."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        labels = batch[1] if len(batch) > 1 else None
        if labels is not None and not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(labels)
        return batch[0], labels
    raise UserError(f"a batch must be a tensor or a tuple (inputs, labels) of tensors, got {type(batch).__name__}")


def _raw_batches(split: Any, batch_size: int, order: Sequence[int] | None) -> Iterator[Any]:
    if isinstance(split, DataLoader):
        yield from split
        return
    if isinstance(split, IterableDataset):
        yield from DataLoader(split, batch_size=batch_size, num_workers=getattr(split, "num_workers", 0))
        return
    indices = range(len(split)) if order is None else order  # type: ignore[arg-type]
    if isinstance(split, TensorDataset):
        for start in range(0, len(indices), batch_size):
            idx = torch.as_tensor(indices[start:start + batch_size], dtype=torch.int64)
            yield tuple(t[idx] for t in split.tensors[:2])
        return
    chunks = [list(indices[s:s + batch_size]) for s in range(0, len(indices), batch_size)]
    yield from DataLoader(split, batch_sampler=chunks, num_workers=getattr(split, "num_workers", 0))


def batches(split: Any, batch_size: int, *, order: Sequence[int] | None = None, shuffle: bool = False,
            seed: int = 0, device: torch.device | str | None = None,
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(inputs (B, ...), labels (B, ...) or None) on ``device``.

    Map-style datasets come in ``order`` (indices; default 0..N-1, or a permutation seeded with
    ``seed`` when ``shuffle``) in chunks of ``batch_size``; a DataLoader or an IterableDataset
    in its own order (a DataLoader at its own batch size).
    """
    if shuffle and order is None and not is_streamed(split):
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed)).tolist()
    for batch in _raw_batches(split, batch_size, order):
        inputs, labels = unpack(batch)
        if device is not None:
            inputs = inputs.to(device)
            labels = None if labels is None else labels.to(device)
        yield inputs, labels


def first_samples(split: Any, n: int, *, device: torch.device | str | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``n`` examples (fewer if the split is shorter) as (inputs (n, ...), labels or None)."""
    if isinstance(split, TensorDataset):
        x = split.tensors[0][:n]
        y = split.tensors[1][:n] if len(split.tensors) > 1 else None
        return (x, y) if device is None else (x.to(device), None if y is None else y.to(device))
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    got = 0
    for inputs, labels in batches(split, min(n, 256), device=device):
        xs.append(inputs[: n - got])
        if labels is not None:
            ys.append(labels[: n - got])
        got += len(xs[-1])
        if got >= n:
            break
    if not xs:
        raise UserError("data split is empty")
    return torch.cat(xs), (torch.cat(ys) if len(ys) == len(xs) else None)


def first_inputs(split: Any, n: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The first ``n`` inputs stacked (n, ...): example inputs, calibration, feature probes."""
    return first_samples(split, n, device=device)[0]


def calibration_batches(split: Any, num_samples_: int, batch_size: int,
                        device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Inputs of the first ``num_samples_`` examples in batches of ``batch_size`` (the last may
    be smaller), whatever batch size the split itself comes in."""
    pending: list[torch.Tensor] = []
    left = num_samples_
    held = 0
    for inputs, _ in batches(split, batch_size, device=device):
        pending.append(inputs[:left])
        held += len(pending[-1])
        left -= len(pending[-1])
        while held >= batch_size:
            joined = torch.cat(pending)
            yield joined[:batch_size]
            pending, held = [joined[batch_size:]], held - batch_size
        if left <= 0:
            break
    if held:
        yield torch.cat(pending)


def as_splits(data: Any, where: str = "data") -> Any:
    """A :class:`DataSplits` as is, or one built from a mapping ``{"train": ..., "val": ..., "test": ...}``
    of Datasets / DataLoaders (``train`` required, the others optional)."""
    from torchslim.data.splits import DataSplits

    if data is None or isinstance(data, DataSplits) or (hasattr(data, "train") and not isinstance(data, Mapping)):
        return data  # a DataSplits, or any object with DataSplits' attributes
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a DataSplits or a mapping {{'train': ..., 'val': ..., 'test': ...}} "
                        f"of Datasets or DataLoaders, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(SPLIT_NAMES))
    if unknown:
        raise UserError(f"{where}: unknown split '{unknown[0]}' (known: {', '.join(SPLIT_NAMES)})")
    if data.get("train") is None:
        raise UserError(f"{where}: needs a 'train' split (val and test are optional)")
    for name in SPLIT_NAMES:
        if data.get(name) is not None:
            check_split(data[name], f"{where}: {name}")
    train = data["train"]
    if num_samples(train) == 0:
        raise UserError(f"{where}: the train split is empty")
    x = first_inputs(train, 1)
    num_classes = None
    if isinstance(train, TensorDataset) and len(train.tensors) > 1 and not train.tensors[1].is_floating_point():
        num_classes = int(train.tensors[1].max()) + 1
    shape = tuple(int(d) for d in x.shape[1:])
    return DataSplits(name="user data", train=train, val=data.get("val"), test=data.get("test"),
                      num_classes=num_classes, input_shape=shape)  # type: ignore[arg-type]


def eval_split(data: Any) -> Any:
    """The split accuracy is measured on by default: test, else None."""
    return getattr(data, "test", None)


def example_split(data: Any) -> Any:
    """The split example inputs come from: test, else val, else train."""
    for name in ("test", "val", "train"):
        split = getattr(data, name, None)
        if split is not None:
            return split
    return None

