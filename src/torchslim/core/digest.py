"""Content digests that say "this is the same run": the starting model and the data.

A resumed compression step is reused only if the model it started from, the data, the
configs so far, the seed and the torchslim version are all the same; keying on names or
paths alone would let a retrained checkpoint at the same path, or two Python calls sharing a
``checkpoint_dir``, resume each other's steps and report a model that was never compressed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import nn


def _update_tensor(h: Any, name: str, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def model_digest(model: nn.Module) -> str:
    """sha256 of the architecture (module names, classes, plain attributes) and every
    parameter and buffer's dtype, shape and bytes."""
    from torchslim.serialize.spec import describe

    h = hashlib.sha256(json.dumps(describe(model), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        _update_tensor(h, name, tensor)
    return h.hexdigest()


def data_digest(data: Any) -> str | None:
    """sha256 of the splits' tensors (``train``/``val``/``test`` TensorDatasets), None for no data.

    A split that is not a TensorDataset is digested by its type, length and its first and last
    examples (reading a whole streaming dataset to key a cache would cost a full epoch); a
    DataLoader or IterableDataset by its first example (a shuffled one never resumes).
    """
    from torchslim.data.access import first_samples, is_streamed, num_samples

    if data is None:
        return None
    h = hashlib.sha256()
    for split in ("train", "val", "test"):
        part = getattr(data, split, None)
        if part is None:
            continue
        tensors = getattr(part, "tensors", None)
        if tensors is not None:
            for i, t in enumerate(tensors):
                _update_tensor(h, f"{split}.{i}", t)
        elif is_streamed(part):
            h.update(f"{split}:{type(part).__qualname__}:{num_samples(part)}".encode())
            for j, item in enumerate(first_samples(part, 1)):
                if item is not None:
                    _update_tensor(h, f"{split}[0].{j}", item)
        else:
            n = len(part)
            h.update(f"{split}:{type(part).__qualname__}:{n}".encode())
            for index in {0, n - 1} if n else set():
                for j, item in enumerate(part[index]):
                    if isinstance(item, torch.Tensor):
                        _update_tensor(h, f"{split}[{index}].{j}", item)
                    else:
                        h.update(repr(item).encode())
    return h.hexdigest()
