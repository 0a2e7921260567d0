"""How a spec names a module class, which classes it may name, and resolving a name to a class.

- ``torch.nn`` layers and torchslim's own modules keep their dotted name
  (``torch.nn.modules.conv.Conv2d``, ``torchslim.zoo.resnet.BasicBlock``), as in schema 1;
  torch classes load only from the allow-list below (plus classes a technique registers with
  :func:`allow_module`), torchslim classes are imported from the torchslim package.
- Any other class (the user's own) is named by its import path ``package.module:Outer.Inner``
  and is imported at load time only when the caller passes ``trust_code=True`` (as Hugging
  Face's ``trust_remote_code``): importing a module runs its code.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from torchslim.errors import UserError

_ALLOWED: dict[str, type[nn.Module]] = {}


def is_own(cls: type) -> bool:
    """True for torch's and torchslim's classes (named by dotted path, never need trust_code)."""
    root = cls.__module__.partition(".")[0]
    return root in ("torch", "torchslim")


def class_key(cls: type) -> str:
    if is_own(cls):
        return f"{cls.__module__}.{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def is_user_key(key: str) -> bool:
    return ":" in key


def allow_module(cls: type[nn.Module]) -> type[nn.Module]:
    """Let :func:`torchslim.load` build ``cls`` by its constructor (its ``__init__`` args must be
    plain attributes of the same names)."""
    _ALLOWED[class_key(cls)] = cls
    return cls


def allowed(cls: type) -> bool:
    return _ALLOWED.get(class_key(cls)) is cls


for _cls in (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear, nn.Bilinear, nn.Embedding,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.Identity, nn.Sequential, nn.ModuleList, nn.ModuleDict,
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Mish, nn.ELU, nn.CELU, nn.SELU, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.PReLU, nn.Softplus,
    nn.Softmax, nn.LogSoftmax,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.Flatten, nn.Unflatten, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle,
    nn.ZeroPad2d,
):
    allow_module(_cls)


def save_problem(cls: type) -> str | None:
    """Why ``cls`` cannot be recorded in a spec, or None."""
    key = class_key(cls)
    if is_own(cls):
        if cls.__module__.startswith("torch.") and not allowed(cls):
            return f"class {key} is not on torchslim's allow-list"
        return None
    if "<locals>" in cls.__qualname__:
        return f"class {cls.__qualname__} is defined inside a function; define it at module level so it can be imported"
    if cls.__module__ == "__main__":
        return f"class {cls.__qualname__} is defined in __main__; move it to an importable module"
    try:
        found = _import(key)
    except UserError as exc:
        return str(exc)
    if found is not cls:
        return f"class {key} does not import back as itself (import path {key} gives {found!r})"
    return None


def _import(key: str) -> Any:
    module_name, _, qualname = key.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"class {key}: module {module_name} does not import ({exc})") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"class {key}: {module_name} has no {qualname}") from None
    return obj


def _import_own(key: str) -> Any:
    """A torchslim class from its dotted name (module path, then possibly nested qualname)."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            break
        return obj
    raise UserError(f"class {key} does not exist in this torchslim")


def resolve(key: Any, trust_code: bool) -> type[nn.Module]:
    """The class a spec names; user classes are imported only with ``trust_code``."""
    if not isinstance(key, str):
        raise UserError(f"class {key!r} is not a class name")
    if key in _ALLOWED:
        return _ALLOWED[key]
    if is_user_key(key):
        if not trust_code:
            raise UserError(f"class {key} is user code; load with trust_code=True")
        cls = _import(key)
    elif key.startswith("torchslim."):
        cls = _import_own(key)
    else:
        raise UserError(f"class {key} is not on torchslim's allow-list")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UserError(f"class {key} is not a torch.nn.Module class")
    if class_key(cls) != key:  # an alias (torchslim.x.nn.LSTM) would reach classes the allow-list keeps out
        raise UserError(f"class {key} is {class_key(cls)}; a spec names classes by their own path")
    return cls
