"""Parameter count and exact safetensors file size of a model's weights.

safetensors defines the format; what it lacks is a size query that does not serialize:
``len(safetensors.torch.save(state_dict))`` copies every weight twice (about 0.15-0.9 s
for ResNet-50's 100 MB), so the size is computed here from the format instead:

    size_bytes = 8 (header length, u64) + header JSON padded with spaces to a multiple
                 of 8 + sum of tensor bytes

The header's ``data_offsets`` depend on the order the Rust writer lays tensors out in
(dtype rank descending, then name), so that order is reproduced here. Shared tensors are
stored once, the way ``safetensors.torch.save_model`` does it (its own dedup helper
picks the kept name and the ``__metadata__`` it records). Tests check the result
against the bytes safetensors writes.
"""

from __future__ import annotations

import json

import torch
from safetensors.torch import _remove_duplicate_names, save
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

# The Rust ``Dtype`` enum in declaration order (safetensors 0.4 - 0.8): the writer sorts
# tensors by this rank, descending, then by name.
_RUST_DTYPE_ORDER = [
    "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
    "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
]
_DTYPE_NAME = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32",
    torch.complex64: "C64", torch.float64: "F64", torch.int64: "I64",
    torch.float8_e5m2: "F8_E5M2", torch.float8_e4m3fn: "F8_E4M3",
    torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
}
_RANK = {name: rank for rank, name in enumerate(_RUST_DTYPE_ORDER)}


def count_params(model: nn.Module) -> int:
    """Number of parameter elements; a tensor tied under several names counts once.

    ``model.parameters()`` already drops repeated ``Parameter`` objects; parameters that
    are distinct objects over the same memory (same storage, offset, shape, stride) are
    dropped here too.
    """
    seen: set[tuple[object, ...]] = set()
    total = 0
    for p in model.parameters():
        key = (StorageWeakRef(p.untyped_storage()), p.storage_offset(), tuple(p.shape), p.stride())
        if key not in seen:
            seen.add(key)
            total += p.numel()
    return total


def _dedup(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop shared tensors like ``save_model``: returns (kept tensors, metadata it writes)."""
    kept = dict(state_dict)
    metadata: dict[str, str] = {}
    for keep_name, removed in _remove_duplicate_names(state_dict).items():
        for name in removed:
            metadata.setdefault(name, keep_name)
            del kept[name]
    return kept, metadata


def safetensors_size_bytes(model_or_state_dict: nn.Module | dict[str, torch.Tensor]) -> int:
    """Exact size in bytes of the state dict written as one safetensors file.

    Equals ``len(safetensors.torch.save(sd))`` when no tensors are shared, and the size
    of ``safetensors.torch.save_model``'s file otherwise.
    """
    state_dict = (
        model_or_state_dict.state_dict()
        if isinstance(model_or_state_dict, nn.Module)
        else dict(model_or_state_dict)
    )
    tensors, metadata = _dedup(state_dict)
    if any(t.dtype not in _DTYPE_NAME for t in tensors.values()):
        # a dtype this table does not know: let safetensors serialize it
        contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        return len(save(contiguous, metadata=metadata or None))

    order = sorted(tensors, key=lambda name: (-_RANK[_DTYPE_NAME[tensors[name].dtype]], name))
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name in order:
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {
            "dtype": _DTYPE_NAME[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    header_len = len(json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode())
    header_len += -header_len % 8
    return 8 + header_len + offset
