"""Describe a module tree as JSON and rebuild it, without pickle.

A model is rebuilt in two moves:
1. its *origin*, when it has one (a zoo builder name plus kwargs, see :mod:`torchslim.zoo`),
   builds the original architecture; a model without one starts from its recorded root;
2. the recorded module tree patches it: every module's class and its plain attributes
   (ints, floats, bools, strings, lists of them: ``in_channels``, ``num_heads``, a user's
   ``scale = 0.5``...) are recorded; a module whose class or constructor attributes changed (a
   pruned conv, a BN folded to Identity, a conv factorized into a Sequential), or that the
   origin does not have, is built, and parameter shapes are taken from the weights file.

How a module is built (see :mod:`torchslim.serialize.classes` for which classes may be named):
- a class on the allow-list by its constructor, called with the recorded attributes of the
  same names;
- any other class (the user's, torchslim's zoo blocks) without its constructor, whose
  arguments are not recorded: ``cls.__new__``, then the ``__init__`` of its nearest allowed
  base class (``nn.Module``, or e.g. ``nn.Conv2d`` for a subclass of it) with the recorded
  attributes, then the recorded attributes set, the children built from the tree and the
  tensors taken from the weights file. The class's own ``forward`` and methods then work on
  that state. State kept anywhere else is not restored: private (``_``) attributes, values
  that are not plain (dicts, functions, tensors that are not parameters or buffers),
  non-persistent buffers and hooks; :func:`torchslim.save` loads every model back and
  refuses one that loses any of these.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from torchslim.core.modules import set_submodule
from torchslim.errors import UserError
from torchslim.serialize.attrs import check_argument, check_free, check_known, check_weights, module_attrs, tuple_attrs
from torchslim.serialize.classes import allow_module, allowed, class_key, resolve

__all__ = ["allow_module", "apply_tree", "class_key", "describe", "module_attrs", "tensor_kinds"]

_SLOTS = ("parameters", "buffers", "modules")

# state-dict name -> (shape, dtype, kind): "parameter", "frozen" (requires_grad=False), "buffer", None (schema 1)
Tensors = dict[str, tuple[list[int], torch.dtype, str | None]]


def tensor_kinds(model: nn.Module) -> dict[str, str]:
    """What each state-dict entry is, so a module rebuilt without its constructor gets it right."""
    kinds = {n: "parameter" if p.requires_grad else "frozen" for n, p in model.named_parameters(remove_duplicate=False)}
    kinds.update({n: "buffer" for n, _ in model.named_buffers(remove_duplicate=False)})
    return kinds


def describe(model: nn.Module) -> list[dict[str, Any]]:
    """One entry per module, parents before children: name, class, attrs (and, for classes
    rebuilt without their constructor, which attrs are tuples and which parameter, buffer or
    submodule slots hold None, as ``register_parameter("bias", None)`` leaves)."""
    entries = []
    for name, m in model.named_modules():
        entry = {"name": name, "class": class_key(type(m)), "attrs": module_attrs(m)}
        if not allowed(type(m)):
            if tuple_attrs(m):
                entry["tuples"] = tuple_attrs(m)
            empty = {slot: sorted(k for k, v in getattr(m, f"_{slot}").items() if v is None) for slot in _SLOTS}
            if any(empty.values()):
                entry["none"] = {slot: names for slot, names in empty.items() if names}
        entries.append(entry)
    return entries


def _restore(value: Any, current: Any, as_tuple: bool) -> Any:
    if isinstance(value, list) and (as_tuple or isinstance(current, tuple)):
        return tuple(value)
    return value


def _ctor_kwargs(name: str, cls: type, attrs: dict[str, Any], param_names: set[str]) -> dict[str, Any]:
    kwargs = {}
    for pname, p in inspect.signature(cls.__init__).parameters.items():
        if pname == "bias" and "bias" not in attrs:
            kwargs["bias"] = "bias" in param_names
        elif pname in attrs:
            value = attrs[pname]
            check_argument(name, cls, pname, value, p.annotation)
            kwargs[pname] = tuple(value) if isinstance(value, list) else value
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and pname != "self":
            raise UserError(f"module '{name}': cannot build {class_key(cls)}, missing '{pname}'")
    return kwargs


def _build(entry: dict[str, Any], cls: type[nn.Module], param_names: set[str]) -> nn.Module:
    name = entry["name"]
    base = next(c for c in cls.__mro__ if c is nn.Module or allowed(c))
    kwargs = {} if base is nn.Module else _ctor_kwargs(name, base, entry["attrs"], param_names)
    try:
        if base is cls:
            return cls(**kwargs)
        module = cls.__new__(cls)
        base.__init__(module, **kwargs)
        return module
    except (TypeError, ValueError, RuntimeError) as exc:  # constructor arguments taken from the spec
        raise UserError(f"module '{name}': cannot build {class_key(base)} from its attributes "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _entries(entries: Any) -> list[dict[str, Any]]:
    if not isinstance(entries, list) or not entries:
        raise UserError("field 'modules' is not a list of modules")
    for entry in entries:
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("attrs"), dict)
                and isinstance(entry.get("tuples", []), list)):
            raise UserError(f"module entry {str(entry)[:80]!r} needs a name, a class and attrs")
        parts = entry["name"].split(".") if entry["name"] else []
        if not all(_attribute_name(p) for p in parts):
            raise UserError(f"module name {entry['name']!r} is not a dotted path of attribute names")
        none = entry.get("none", {})
        if not (isinstance(none, dict) and set(none) <= set(_SLOTS)
                and all(isinstance(v, list) and all(_attribute_name(n) for n in v) for v in none.values())):
            raise UserError(f"module '{entry['name']}': field 'none' is not a mapping of {'/'.join(_SLOTS)} to names")
    return entries


def _attribute_name(part: Any) -> bool:
    return isinstance(part, str) and (part.isidentifier() or part.isdigit()) and not (
        part.startswith("__") and part.endswith("__"))


def apply_tree(model: nn.Module | None, entries: list[dict[str, Any]], tensors: dict[str, tuple[Any, ...]], *,
               trust_code: bool = False) -> nn.Module:
    """Patch ``model`` (built from its origin; None: build the root too) to match ``entries``
    and the state-dict ``tensors`` (see :data:`Tensors`; (shape, dtype) pairs mean kind None)."""
    entries = _entries(entries)
    tensors = {k: (v[0], v[1], v[2] if len(v) > 2 else None) for k, v in tensors.items()}
    by_module: dict[str, set[str]] = {}
    for key in tensors:
        owner, _, pname = key.rpartition(".")
        by_module.setdefault(owner, set()).add(pname)
    children: dict[str, set[str]] = {}
    for entry in entries:
        if entry["name"]:
            parent, _, child = entry["name"].rpartition(".")
            children.setdefault(parent, set()).add(child)
    if model is None and entries[0]["name"] != "":
        raise UserError("the first module entry is not the root (name '')")
    for entry in entries:
        model, current = _place(model, entry, resolve(entry.get("class"), trust_code), by_module)
        taken = children.get(entry["name"], set()) | by_module.get(entry["name"], set())
        _set_attrs(entry, current, taken)
        prefix = f"{entry['name']}." if entry["name"] else ""
        check_weights(entry["name"], current, {p: tensors[prefix + p][0] for p in by_module.get(entry["name"], set())})
    wanted = {e["name"] for e in entries}
    for name, _ in reversed(list(model.named_modules())):
        if name and name not in wanted:
            parent, _, child = name.rpartition(".")
            delattr(model.get_submodule(parent), child)
    _match_tensors(model, by_module, tensors)
    return model


def _place(model: nn.Module | None, entry: dict[str, Any], cls: type[nn.Module],
           by_module: dict[str, set[str]]) -> tuple[nn.Module, nn.Module]:
    """(model, the module at ``entry``): the origin's own when it matches, else built and put there."""
    name, attrs = entry["name"], entry["attrs"]
    current = model if not name else _get(model, name)
    if allowed(cls) and type(current) is cls:  # types checked against the origin's own instance first
        check_known(name, current, attrs)
    if current is not None and type(current) is cls and not (
            allowed(cls) and module_attrs(current) != attrs and not list(current.children())):
        return model, current
    if not name and model is not None:
        raise UserError(f"root module class {entry['class']} does not match the model's origin")
    current = _build(entry, cls, by_module.get(name, set()))
    if not name:
        return current, current
    set_submodule(model, name, current)
    return model, current


def _set_attrs(entry: dict[str, Any], module: nn.Module, taken: set[str]) -> None:
    """Check the entry's attributes against the class (see :mod:`attrs`), then set them."""
    name, attrs = entry["name"], entry["attrs"]
    if allowed(type(module)):
        check_known(name, module, attrs)
    else:
        check_free(name, type(module), attrs, taken)
    for slot, names in entry.get("none", {}).items():
        for key in names:
            if key in taken or key in attrs or hasattr(type(module), key):
                raise UserError(f"module '{name}': empty {slot[:-1]} slot '{key}' collides with another name")
            getattr(module, f"_{slot}").setdefault(key, None)
    as_tuple = set(entry.get("tuples", []))
    for key, value in attrs.items():
        old = getattr(module, key, None)
        new = _restore(value, old, key in as_tuple)
        if key not in vars(module) or old != new:
            setattr(module, key, new)


def _get(model: nn.Module, name: str) -> nn.Module | None:
    parent, _, child = name.rpartition(".")
    try:
        owner = model.get_submodule(parent) if parent else model
    except AttributeError:
        raise UserError(f"module '{name}' comes before its parent '{parent}' in the spec") from None
    return owner._modules.get(child)


def _match_tensors(model: nn.Module, by_module: dict[str, set[str]], tensors: Tensors) -> None:
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
            shape, dtype, kind = tensors[f"{name}.{pname}" if name else pname]
            shape = torch.Size(shape)
            if kind == "buffer" or (kind is None and pname in module._buffers):  # schema 1: as the module has it
                module._parameters.pop(pname, None)
                buf = module._buffers.get(pname)
                if buf is None or buf.shape != shape or buf.dtype != dtype:
                    module._buffers[pname] = torch.empty(shape, dtype=dtype)
            else:
                module._buffers.pop(pname, None)
                param = module._parameters.get(pname)
                if param is None or param.shape != shape or param.dtype != dtype:
                    param = module._parameters[pname] = nn.Parameter(torch.empty(shape, dtype=dtype),
                                                                     requires_grad=dtype.is_floating_point)
                if kind is not None:
                    param.requires_grad_(dtype.is_floating_point and kind == "parameter")
