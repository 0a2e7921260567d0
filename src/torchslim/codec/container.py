"""The ``.tsc`` file: a model's architecture spec plus every state-dict tensor, each in its
smallest bit-exact layout (see :mod:`.tensor`).

Layout (little-endian):

    magic    8 bytes  b"\\x89TSC\\r\\n\\x1a\\n"  (PNG-style: catches text-mode and 7-bit damage)
    version  u16      FORMAT_VERSION
    flags    u16      0
    hlen     u32      length of the header
    header   hlen     zlib-compressed JSON: origin (zoo builder + kwargs), module tree
                      (``torchslim.serialize.spec.describe``), tied parameters, one entry per
                      tensor (name, shape, dtype, layout, store dtype, codebook size, index bits,
                      non-zeros, payload bytes)
    records  ...      the tensors' payloads, in header order
    digest   16 bytes BLAKE2b-128 of everything before it

A reader checks magic, version, length and digest before parsing anything, then checks every
stream while decoding (symbol ranges, counts, exact byte use), so a damaged file raises a
one-line ``UserError`` rather than yielding a wrong model.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.codec.bitio import CorruptError
from torchslim.codec.streams import Coder
from torchslim.codec.tensor import TensorStats, decode_tensor, encode_tensor
from torchslim.core.atomic import write_bytes_atomic
from torchslim.errors import UserError

MAGIC = b"\x89TSC\r\n\x1a\n"
FORMAT_VERSION = 1
FORMAT = "torchslim.compressed"
DIGEST_BYTES = 16
_FIXED = struct.Struct("<HHI")


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def _same_as_origin(model: nn.Module, origin: dict[str, Any]) -> bool:
    """True when the zoo builder alone rebuilds ``model``'s module tree (nothing to embed)."""
    from torchslim.serialize.spec import describe
    from torchslim.zoo import create_model

    try:
        fresh = create_model(origin["name"], **origin.get("kwargs", {}))
    except Exception:  # an origin that no longer builds: embed the tree
        return False
    same_tensors = {k: (v.shape, v.dtype) for k, v in fresh.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
    return same_tensors and describe(fresh) == describe(model)


def encode_bytes(model: nn.Module, *, coder: Coder = "auto", index_bits: dict[str, int] | None = None,
                 embed_spec: bool | None = None) -> tuple[bytes, list[TensorStats], int]:
    """(file bytes, per-tensor stats, header bytes) for ``model``'s state dict.

    ``index_bits``: layer name -> fixed gap width (the paper: 4 conv, 5 fc); others are chosen
    per tensor to minimise size. Tied tensors (one storage, several names) are stored once.
    ``embed_spec``: store the module tree; None (default) stores it only when the zoo origin
    alone would not rebuild the same modules and tensor shapes.
    """
    from torchslim.serialize.spec import describe
    from torchslim.serialize.verify import tied_parameters

    index_bits = index_bits or {}
    origin = getattr(model, "_torchslim_origin", None)
    if embed_spec is None:
        embed_spec = origin is not None and not _same_as_origin(model, origin)
    entries, payloads, stats = [], [], []
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and key in seen:
            entries.append({"name": name, "same_as": seen[key]})
            continue
        seen[key] = name
        entry, payload, stat = encode_tensor(name, tensor, coder, index_bits.get(name.removesuffix(".weight")))
        entries.append(entry)
        payloads.append(payload)
        stats.append(stat)
    header = {
        "format": FORMAT,
        "torch_version": torch.__version__,
        "origin": origin,
        "modules": describe(model) if embed_spec and origin is not None else None,
        "tied": tied_parameters(model),
        "tensors": entries,
    }
    header_bytes = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    body = MAGIC + _FIXED.pack(FORMAT_VERSION, 0, len(header_bytes)) + header_bytes + b"".join(payloads)
    return body + _digest(body), stats, len(header_bytes) + len(MAGIC) + _FIXED.size + DIGEST_BYTES


def write_model(model: nn.Module, path: str | os.PathLike, **kwargs: Any) -> tuple[Path, list[TensorStats], int]:
    """Encode ``model`` and write it to ``path`` atomically; returns (path, stats, overhead bytes)."""
    data, stats, overhead = encode_bytes(model, **kwargs)
    return write_bytes_atomic(path, data), stats, overhead


def read_header(data: bytes, where: str) -> tuple[dict[str, Any], int]:
    """Validate framing and digest; returns (header, offset of the first record)."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise UserError(f"{where}: not a torchslim compressed model (bad magic bytes)")
    if len(data) < len(MAGIC) + _FIXED.size + DIGEST_BYTES:
        raise UserError(f"{where}: truncated file ({len(data)} bytes)")
    version, _flags, hlen = _FIXED.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise UserError(f"{where}: format version {version} is not supported (this torchslim reads {FORMAT_VERSION})")
    body, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if _digest(body) != digest:
        raise UserError(f"{where}: checksum mismatch, the file is corrupt or truncated")
    start = len(MAGIC) + _FIXED.size
    try:
        header = json.loads(zlib.decompress(body[start : start + hlen]))
    except (zlib.error, ValueError) as exc:
        raise UserError(f"{where}: corrupt header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or not isinstance(header.get("tensors"), list):
        raise UserError(f"{where}: header is not a {FORMAT} header")
    return header, start + hlen


def decode_state_dict(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(header, state dict) of a ``.tsc`` file; tensors are bit-identical to the encoded ones."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    header, offset = read_header(data, str(path))
    body_end = len(data) - DIGEST_BYTES
    state: dict[str, torch.Tensor] = {}
    for entry in header["tensors"]:
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        try:
            if "same_as" in entry:
                state[name] = state[entry["same_as"]]
                continue
            size = int(entry["bytes"])
            if size < 0 or offset + size > body_end:
                raise CorruptError("record runs past the end of the file")
            state[name] = decode_tensor(entry, data[offset : offset + size])
            offset += size
        except (CorruptError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"{path}: tensor '{name}' does not decode ({exc})") from None
    if offset != body_end:
        raise UserError(f"{path}: {body_end - offset} unexpected bytes after the last tensor")
    return header, state


def decode_model(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model stored in a ``.tsc`` file (like ``torchslim.load``), in eval mode."""
    from torchslim.core.registry import techniques
    from torchslim.serialize.spec import apply_tree
    from torchslim.zoo import create_model

    techniques()  # technique modules put their layer classes on the load allow-list
    header, state = decode_state_dict(path)
    origin, modules = header.get("origin"), header.get("modules")
    if not isinstance(origin, dict) or "name" not in origin:
        raise UserError(f"{path}: no architecture origin stored; use torchslim.codec.decode_state_dict")
    model = create_model(origin["name"], **origin.get("kwargs", {}))
    if modules is not None:
        apply_tree(model, modules, {k: (list(v.shape), v.dtype) for k, v in state.items()})
    for first, *others in header.get("tied", []):
        shared = model.get_parameter(first)
        for name in others:
            owner, _, pname = name.rpartition(".")
            setattr(model.get_submodule(owner), pname, shared)
    model._torchslim_origin = origin
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path}: tensors do not match the stored architecture ({str(exc).splitlines()[0]})") from None
    return model.eval()
