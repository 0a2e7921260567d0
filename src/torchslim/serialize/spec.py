"""Describe a module tree as JSON and rebuild it, without pickle.

A model is rebuilt in two moves:
1. its *origin* (a zoo builder name plus kwargs, see :mod:`torchslim.zoo`) builds the
   original architecture;
2. the recorded module tree patches it: every module's class and its plain attributes
   (ints, floats, bools, strings, tuples: ``in_channels``, ``num_heads``...) are recorded; a
   module whose class or constructor attributes changed (a pruned conv, a BN folded to
   Identity, a conv factorized into a Sequential) is rebuilt from an allow-list of classes,
   and parameter shapes are taken from the weights file.

Only classes on the allow-list can be built: the standard ``torch.nn`` layers below, the
zoo's own blocks, and classes a technique registers with :func:`allow_module`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from torchslim.core.modules import set_submodule
from torchslim.errors import UserError

_SIMPLE = (int, float, bool, str, type(None))
_ALLOWED: dict[str, type[nn.Module]] = {}


def class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def allow_module(cls: type[nn.Module]) -> type[nn.Module]:
    """Let :func:`torchslim.load` build ``cls`` (its ``__init__`` args must be plain attributes)."""
    _ALLOWED[class_key(cls)] = cls
    return cls


for _cls in (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear, nn.Bilinear,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm2d, nn.Identity, nn.Sequential, nn.ModuleList, nn.ModuleDict,
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.LeakyReLU,
    nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Softmax,
    nn.Upsample, nn.PixelShuffle,
):
    allow_module(_cls)


def _plain(value: Any) -> Any:
    if isinstance(value, _SIMPLE):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, _SIMPLE) for v in value):
        return list(value)
    raise TypeError


def module_attrs(module: nn.Module) -> dict[str, Any]:
    """Public plain attributes of ``module`` (``training`` excluded)."""
    attrs = {}
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        try:
            attrs[key] = _plain(value)
        except TypeError:
            continue
    return attrs


def describe(model: nn.Module) -> list[dict[str, Any]]:
    """One entry per module, parents before children: name, class, attrs."""
    return [
        {"name": name, "class": class_key(type(m)), "attrs": module_attrs(m)}
        for name, m in model.named_modules()
    ]


def _restore(value: Any, current: Any) -> Any:
    return tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value


def _build(entry: dict[str, Any], param_names: set[str]) -> nn.Module:
    cls = _ALLOWED.get(entry["class"])
    if cls is None:
        raise UserError(f"module '{entry['name']}': class {entry['class']} is not on torchslim's allow-list")
    attrs = entry["attrs"]
    kwargs = {}
    for pname, p in inspect.signature(cls.__init__).parameters.items():
        if pname == "bias" and "bias" not in attrs:
            kwargs["bias"] = "bias" in param_names
        elif pname in attrs:
            value = attrs[pname]
            kwargs[pname] = tuple(value) if isinstance(value, list) else value
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and pname != "self":
            raise UserError(f"module '{entry['name']}': cannot build {entry['class']}, missing '{pname}'")
    return cls(**kwargs)


def apply_tree(
    model: nn.Module, entries: list[dict[str, Any]], tensors: dict[str, tuple[list[int], torch.dtype]]
) -> nn.Module:
    """Patch ``model`` (built from its origin) to match ``entries`` and the state-dict
    ``tensors`` (name -> (shape, dtype))."""
    by_module: dict[str, set[str]] = {}
    for key in tensors:
        owner, _, pname = key.rpartition(".")
        by_module.setdefault(owner, set()).add(pname)
    wanted = {e["name"] for e in entries}
    for entry in entries:
        name = entry["name"]
        try:
            current = model.get_submodule(name) if name else model
        except AttributeError:
            current = None
        if current is None or class_key(type(current)) != entry["class"] or (
            module_attrs(current) != entry["attrs"] and class_key(type(current)) in _ALLOWED
            and not list(current.children())
        ):
            if not name:
                raise UserError(f"root module class {entry['class']} does not match the model's origin")
            current = _build(entry, by_module.get(name, set()))
            set_submodule(model, name, current)
        for key, value in entry["attrs"].items():
            if getattr(current, key, None) != _restore(value, getattr(current, key, None)):
                setattr(current, key, _restore(value, getattr(current, key, None)))
    for name, _ in reversed(list(model.named_modules())):
        if name and name not in wanted:
            parent, _, child = name.rpartition(".")
            delattr(model.get_submodule(parent), child)
    _match_tensors(model, by_module, tensors)
    return model


def _match_tensors(
    model: nn.Module, by_module: dict[str, set[str]], tensors: dict[str, tuple[list[int], torch.dtype]]
) -> None:
    """Give every module exactly the parameters/buffers the file has, with the file's shapes."""
    for name, module in model.named_modules():
        in_file = by_module.get(name, set())
        for pname in list(module._parameters):
            if pname not in in_file:
                module._parameters[pname] = None
        for bname in list(module._buffers):
            if bname not in in_file and bname not in module._non_persistent_buffers_set:
                module._buffers[bname] = None
        for pname in in_file:
            shape, dtype = tensors[f"{name}.{pname}" if name else pname]
            shape = torch.Size(shape)
            if pname in module._buffers:
                buf = module._buffers[pname]
                if buf is None or buf.shape != shape or buf.dtype != dtype:
                    module._buffers[pname] = torch.empty(shape, dtype=dtype)
            else:
                param = module._parameters.get(pname)
                if param is None or param.shape != shape or param.dtype != dtype:
                    module._parameters[pname] = nn.Parameter(torch.empty(shape, dtype=dtype),
                                                             requires_grad=dtype.is_floating_point)
