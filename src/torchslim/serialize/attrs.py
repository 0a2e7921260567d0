"""Plain module attributes: recording them, and checking the ones a spec asks to set.

A spec may only set what the module would have had anyway: for a class built by its
constructor (the allow-list) or by the zoo origin, the keys that instance already has, with
the same type; for a class rebuilt without its constructor (user and other torchslim
classes), public names that are not methods or properties of the class, not its children or
tensors, and plain JSON values. Sizes that contradict the weights file are refused too.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import torch
from torch import nn

from torchslim.errors import UserError

_SIMPLE = (int, float, bool, str, type(None))
DTYPES = {name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}


def plain(value: Any) -> Any:
    """``value`` as JSON (lists for tuples), or TypeError if it is not a plain value."""
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
            attrs[key] = plain(value)
        except TypeError:
            continue
    return attrs


def tuple_attrs(module: nn.Module) -> list[str]:
    return sorted(k for k, v in vars(module).items() if isinstance(v, tuple) and k in module_attrs(module))


def parse_dtype(name: Any, where: str) -> torch.dtype:
    if not isinstance(name, str) or name not in DTYPES:
        raise UserError(f"{where}: dtype {name!r} is not a torch dtype")
    return DTYPES[name]


def _same_type(value: Any, current: Any) -> bool:
    if value is None or current is None:
        return True
    if isinstance(current, (tuple, list)):
        return isinstance(value, list)
    return type(value) is type(current) or (type(current) is float and type(value) is int)


def check_known(name: str, module: nn.Module, attrs: dict[str, Any]) -> None:
    """Keys of ``attrs`` must be plain attributes ``module`` already has, of the same type."""
    known = module_attrs(module)
    for key, value in attrs.items():
        if key not in known:
            raise UserError(f"module '{name}': attribute '{key}' is not an attribute of {type(module).__name__}")
        if not _is_plain(value) or not _same_type(value, getattr(module, key)):
            raise UserError(f"module '{name}': attribute '{key}' = {value!r} has the wrong type for "
                            f"{type(module).__name__} (expected {type(getattr(module, key)).__name__})")


def check_free(name: str, cls: type[nn.Module], attrs: dict[str, Any], taken: set[str]) -> None:
    """Keys for a class rebuilt without its constructor: public, not a method/property, plain."""
    for key, value in attrs.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_") or key == "training":
            raise UserError(f"module '{name}': attribute {key!r} may not be set from a spec")
        if key in taken:
            raise UserError(f"module '{name}': attribute '{key}' collides with a submodule or tensor of that name")
        on_class = inspect.getattr_static(cls, key, None)
        if on_class is not None and not _is_plain(on_class):
            raise UserError(f"module '{name}': attribute '{key}' would replace {cls.__name__}.{key} "
                            f"({type(on_class).__name__})")
        if not _is_plain(value) or (on_class is not None and not _same_type(value, on_class)):
            raise UserError(f"module '{name}': attribute '{key}' = {value!r} is not a plain value of the right type")


def check_argument(name: str, cls: type, key: str, value: Any, annotation: Any) -> None:
    """A constructor argument taken from the spec must fit the constructor's type annotation."""
    if _fits(value, annotation) is False:
        shown = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
        raise UserError(f"module '{name}': attribute '{key}' = {value!r} is not {shown} ({cls.__name__})")


def _fits(value: Any, ann: Any) -> bool | None:
    """Whether a JSON value fits a plain annotation; None when the annotation says nothing usable."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        results = [_fits(value, a) for a in typing.get_args(ann)]
        return True if True in results else None if None in results else False
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in typing.get_args(ann))
    if origin is tuple:
        args = typing.get_args(ann)
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        return len(args) == len(value) and all(_fits(v, a) is not False for v, a in zip(value, args))
    simple = {type(None): lambda v: v is None, bool: lambda v: type(v) is bool, int: lambda v: type(v) is int,
              float: lambda v: type(v) in (int, float), str: lambda v: type(v) is str}
    return simple[ann](value) if ann in simple else None


def _is_plain(value: Any) -> bool:
    try:
        plain(value)
    except TypeError:
        return False
    return True


def check_weights(name: str, module: nn.Module, shapes: dict[str, list[int]]) -> None:
    """Sizes in ``module``'s attributes that contradict its tensors in the weights file."""
    for key, expected, tensor in _sizes(module, shapes):
        actual = getattr(module, key, None)
        if isinstance(actual, tuple):
            actual = list(actual)
        if actual != expected:
            raise UserError(f"module '{name}': {key} {actual!r} contradicts {tensor} shape {shapes[tensor]} "
                            "in the weights file")


def _sizes(m: nn.Module, shapes: dict[str, list[int]]) -> list[tuple[str, Any, str]]:
    """(attribute, value the tensors imply, tensor it comes from) for the standard layers."""
    w = shapes.get("weight")
    if isinstance(m, nn.modules.conv._ConvNd) and w is not None and len(w) >= 2:
        groups = m.groups if isinstance(m.groups, int) else 1
        first, second = ("in_channels", "out_channels") if m.transposed else ("out_channels", "in_channels")
        return [(first, w[0], "weight"), (second, w[1] * groups, "weight"), ("kernel_size", w[2:], "weight")]
    if isinstance(m, nn.Linear) and w is not None and len(w) == 2:
        return [("out_features", w[0], "weight"), ("in_features", w[1], "weight")]
    if isinstance(m, nn.Embedding) and w is not None and len(w) == 2:
        return [("num_embeddings", w[0], "weight"), ("embedding_dim", w[1], "weight")]
    if isinstance(m, nn.modules.batchnorm._NormBase):
        for tensor in ("running_mean", "weight"):
            if tensor in shapes and len(shapes[tensor]) == 1:
                return [("num_features", shapes[tensor][0], tensor)]
    if isinstance(m, nn.GroupNorm) and w is not None and len(w) == 1:
        return [("num_channels", w[0], "weight")]
    if isinstance(m, nn.LayerNorm) and w is not None:
        return [("normalized_shape", w, "weight")]
    return []
