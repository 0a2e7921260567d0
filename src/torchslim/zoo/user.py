"""The user's own model: a builder named by import path, weights from a file.

>>> model = build_user_model("my_pkg.models:make_net", {"width": 16})
>>> load_weights_(model, "weights.safetensors")   # or a torch.save'd state dict (weights_only)

A builder is any callable returning an ``nn.Module``; its keyword arguments are checked
against its signature (:func:`check_builder_kwargs`) before anything is built.
"""

from __future__ import annotations

import inspect
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.imports import import_object
from torchslim.errors import UserError

# Filled from the data when the builder accepts them and the caller did not set them.
DATA_KWARGS = ("in_channels", "num_classes")


def import_builder(path: str) -> Callable[..., nn.Module]:
    builder = import_object(path)
    if not callable(builder):
        raise UserError(f"builder '{path}': {type(builder).__name__} object is not callable")
    return builder


def _accepts(builder: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return False
    return name in params and params[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                    inspect.Parameter.KEYWORD_ONLY)


def with_data_kwargs(builder: Callable[..., Any], kwargs: Mapping[str, Any], **from_data: Any) -> dict[str, Any]:
    """``kwargs`` plus ``in_channels`` / ``num_classes`` from the data where the builder takes them."""
    out = dict(kwargs)
    for key, value in from_data.items():
        if key in DATA_KWARGS and key not in out and _accepts(builder, key):
            out[key] = value
    return out


def check_builder_kwargs(path: str, kwargs: Mapping[str, Any], data_kwargs: Sequence[str] = ()) -> None:
    """One line if ``kwargs`` (plus the names in ``data_kwargs`` the builder accepts) cannot be passed."""
    builder = import_builder(path)
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return
    supplied = with_data_kwargs(builder, kwargs, **{k: None for k in data_kwargs})
    params = signature.parameters
    accepted = ", ".join(params) or "no arguments"
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in kwargs if k not in params or params[k].kind is params[k].POSITIONAL_ONLY]
        if unknown:
            raise UserError(f"builder '{path}' does not accept argument '{unknown[0]}' (it accepts: {accepted})")
    try:
        signature.bind(**supplied)
    except TypeError as exc:
        raise UserError(f"builder '{path}': {exc} (it accepts: {accepted})") from None


def build_user_model(path: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Call the builder at ``path`` with ``kwargs``, checked first. The model carries no zoo
    origin: ``torchslim.save`` records its classes by import path instead."""
    check_builder_kwargs(path, kwargs)
    model = import_builder(path)(**kwargs)
    if not isinstance(model, nn.Module):
        raise UserError(f"builder '{path}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``torch.save``'d state dict read with
    ``weights_only=True`` (also ``{"state_dict": ...}`` or ``{"model": ...}`` around it)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file does not exist" if not path.exists() else f"{path}: not a file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if zipfile.is_zipfile(path):  # a torch.save archive whose pickle names classes, not only tensors
            raise UserError(f"{path}: holds more than tensors (only a state dict is read, with "
                            "torch.load(weights_only=True); save model.state_dict() instead)") from None
        raise UserError(f"{path}: not a readable torch.save file (not a zip archive)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable torch.save file ({str(exc).splitlines()[0]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"{path}: not a state dict (a mapping of names to tensors)")
    return state


def _first(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_weights_(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the weights file at ``path`` into ``model`` exactly: every key, every shape."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = ([f"missing {_first(missing)}"] if missing else []) + (
            [f"unexpected {_first(unexpected)}"] if unexpected else [])
        raise UserError(f"{path}: keys do not match the model ({'; '.join(parts)})")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise UserError(f"{path}: '{k}' has shape {tuple(state[k].shape)}, the model's is {tuple(own[k].shape)}"
                        + (f" ({len(wrong) - 1} more tensors differ)" if len(wrong) > 1 else ""))
    model.load_state_dict(state, strict=True)
    return model
