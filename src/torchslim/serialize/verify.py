"""What makes a saved model trustworthy: digests of its two files, and the check that what
``save`` wrote loads back as the same model.

The digests are plain sha256 (``hashlib``) of the weights file's bytes and of the spec's
canonical JSON (sorted keys, no whitespace) without its ``digest`` field; they detect files
changed after saving (a flipped weight bit, an edited spec), as the ``.tsc`` codec's checksum
does. They are not signatures: whoever can edit the files can recompute them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.serialize.spec import describe, tensor_kinds

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_OWN_PRIVATE = ("_torchslim_origin",)  # set by torchslim itself on the root, restored from the spec


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def spec_sha256(spec: dict[str, Any]) -> str:
    body = {k: v for k, v in spec.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tied_parameters(model: nn.Module) -> list[list[str]]:
    """Groups of parameter names that are one shared tensor (e.g. tied embeddings)."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def shared_module(model: nn.Module) -> tuple[str, str] | None:
    """(first name, second name) of a module reachable under two names, or None."""
    seen: dict[int, str] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if id(module) in seen:
            return seen[id(module)], name
        seen[id(module)] = name
    return None


def difference(model: nn.Module, loaded: nn.Module) -> str | None:
    """The first way ``loaded`` is not ``model`` (module, attribute, tensor...), or None."""
    ours, theirs = describe(model), describe(loaded)
    if [e["name"] for e in ours] != [e["name"] for e in theirs]:
        missing = sorted({e["name"] for e in ours} ^ {e["name"] for e in theirs})
        return f"module '{missing[0]}' does not load back" if missing else "modules do not load back in the same order"
    for (name, a), b in zip(model.named_modules(), loaded.modules()):
        problem = _module_difference(a, b)
        if problem:
            return f"module '{name}': {problem}"
    for entry, other in zip(ours, theirs):
        if json.dumps(entry, sort_keys=True) != json.dumps(other, sort_keys=True):  # NaN == NaN here
            return f"module '{entry['name']}' loads back as {other['class']} with attributes {other['attrs']}"
    if tensor_kinds(model) != tensor_kinds(loaded):
        return "parameters and buffers do not load back as the same kinds"
    if tied_parameters(model) != tied_parameters(loaded):
        return "tied parameters do not load back tied"
    a, b = model.state_dict(), loaded.state_dict()
    for key, tensor in a.items():
        other = b.get(key)
        if other is None or other.dtype != tensor.dtype or other.shape != tensor.shape or not _same_bytes(tensor, other):
            return f"tensor '{key}' does not load back bit for bit"
    return None


def _module_difference(a: nn.Module, b: nn.Module) -> str | None:
    if type(a) is not type(b):
        return f"loads back as {type(b).__name__}, not {type(a).__name__}"
    for hooks in _HOOKS:
        if getattr(a, hooks, None):
            return f"has {hooks.strip('_').replace('_', ' ')}, which are not saved"
    kept = set(vars(b))
    for key, value in vars(a).items():
        if key in kept or key in _OWN_PRIVATE:
            continue
        if key.startswith("_"):
            return f"private attribute '{key}' is not saved (only public plain attributes are)"
        return (f"attribute '{key}' ({type(value).__name__}) is not saved: only ints, floats, bools, strings, "
                "None and lists/tuples of them are")
    lost = sorted(_own_buffers(a) - _own_buffers(b))
    if lost:
        return f"buffer '{lost[0]}' is not saved (non-persistent buffers are not)"
    for slot in ("parameters", "buffers", "modules"):
        lost = sorted(set(getattr(a, f"_{slot}")) - set(getattr(b, f"_{slot}")))
        if lost:
            return f"{slot[:-1]} slot '{lost[0]}' does not load back"
    return None


def _own_buffers(module: nn.Module) -> set[str]:
    return {n for n, _ in module.named_buffers(recurse=False)}


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
    return a.numel() == 0 or torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))
