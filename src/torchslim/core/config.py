"""Base class of every technique's config: a frozen dataclass validated from recipe dicts.

``from_dict`` turns a YAML mapping into a config and reports the first problem as one line
naming the step and the field (misspelt field, wrong type), before any model is built.
A field whose type is itself a dataclass (``finetune: TrainConfig | None``) is a nested
section: its mapping is merged over the field's default (or the dataclass's own defaults),
so ``finetune: {epochs: 1}`` keeps the technique's other training defaults, and its errors
name the section (``steps[2] (quant.qat): finetune: unknown field 'lrr'``).

Validation of a value lives in the config's ``__post_init__`` only (raise ValueError there);
handlers never re-check a field. Every config class derives from :class:`Checked`, which runs
the annotation checks of :func:`check_fields` (types, finite numbers, booleans that are
booleans) before the class's own ``__post_init__``, for a recipe and a Python call alike.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, ClassVar, Literal, TypeVar

from torchslim.errors import ConfigError, UserError

T = TypeVar("T")


class Checked:
    """Base of every config dataclass: on construction each field is checked against its
    annotation (:func:`check_fields`, which also normalises lists to tuples and ints to
    floats), then the subclass's own ``__post_init__`` rules run. A failure is a
    :class:`ConfigError` (a UserError and a ValueError) naming the field."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is not None and not getattr(own, "_checked", False):
            cls.__post_init__ = _checked_post_init(own)  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        _run_checks(self, None)


def _checked_post_init(own: Any) -> Any:
    @functools.wraps(own)
    def __post_init__(self: Any) -> None:
        _run_checks(self, own)

    __post_init__._checked = True  # type: ignore[attr-defined]
    return __post_init__


def _run_checks(config: Any, own: Any) -> None:
    try:
        check_fields(config)
        if own is not None:
            own(config)
    except ConfigError:
        raise
    except (UserError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(config: Any) -> None:
    """Check every field value of dataclass instance ``config`` against its annotation and
    store it in the field's shape (``[a, b]`` -> ``(a, b)``, ``1`` -> ``1.0`` for a float)."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        coerced = _coerce(value, hints[f.name], f"field '{f.name}'")
        if coerced is not value:
            object.__setattr__(config, f.name, coerced)


@dataclasses.dataclass(frozen=True)
class TechniqueConfig(Checked):
    """Subclass as ``@dataclass(frozen=True)``; every field needs a default."""

    name: ClassVar[str] = ""
    # False when the step may replace layers by containers (``fc`` -> ``fc.0``, ``fc.1``), so
    # the layer names a later step gives are checked leniently before the run.
    keeps_layer_names: ClassVar[bool] = False

    def needs_data(self) -> str | None:
        """What this step uses the recipe's data for besides nested training (e.g.
        ``"calibration"``), or None; :func:`torchslim.pipeline.check_training_data` turns it into
        a one-line error when there is no data, before any step runs."""
        return None

    def needs_eval(self) -> str | None:
        """What this step needs an accuracy evaluation for (``eval_fn``; in a recipe, data), or None."""
        return None

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "") -> TechniqueConfig:
        return from_mapping(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


def from_mapping(cls: type[T], values: Any, where: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from a mapping, checking names and types of every field.

    ``base``: an instance whose values stand in for the fields the mapping does not give
    (default: the class defaults). Errors are one line:
    ``"<where>: unknown field 'x' (known fields: ...)"``.
    """
    prefix = f"{where}: " if where else ""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"{prefix}expected a mapping of fields, got {values!r}")
    return _build(cls, values, prefix, base)


def _build(cls: type[T], values: dict[str, Any], prefix: str, base: T | None) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise UserError(f"{prefix}unknown field '{key}' (known fields: {known})")
    kwargs = {}
    for key, value in values.items():
        nested = _nested_type(hints[key])
        if nested is not None and isinstance(value, dict):
            default = getattr(base, key) if base is not None else _default(fields[key])
            kwargs[key] = _build(nested, value, f"{prefix}{key}: ", default if isinstance(default, nested) else None)
        else:
            kwargs[key] = _coerce(value, hints[key], f"{prefix}field '{key}'")
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{prefix}{exc}") from None


def _nested_type(tp: Any) -> type | None:
    """The dataclass in annotation ``tp`` (``X`` or ``X | None``), or None."""
    arms = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    found = [a for a in arms if dataclasses.is_dataclass(a)]
    return found[0] if found else None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _describe(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping of fields"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, what: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in the field's shape."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        raise UserError(f"{what} must be a mapping of fields, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            if arm is type(None) and value is None:
                return None
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{what} must be a finite number, got {value!r}")
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _coerce(value, arm, what)
            except UserError:
                continue
        raise UserError(f"{what} must be {' or '.join(_describe(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise UserError(f"{what} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{what} must be a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, what) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{what} must be a mapping, got {value!r}")
        key_type, inner = args if len(args) == 2 else (Any, Any)
        return {_coerce(k, key_type, f"{what} key {k!r}"): _coerce(v, inner, f"{what} entry '{k}'")
                for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{what} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{what} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{what} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise UserError(f"{what} must be a finite number, got {value!r}")
        return value if type(value) is float else float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{what} must be a string, got {value!r}")
        return value
    return value


def check_value(value: Any, annotation: Any, what: str) -> Any:
    """``value`` checked against a type annotation (bool, int, float, str, Literal, unions,
    tuples...) the way a config field is: UserError ``"<what> must be ..."``, else the value in
    the annotation's shape. Unknown annotations accept anything."""
    return _coerce(value, annotation, what)


def nested_sections(config: Any, cls: type, path: str = "") -> list[tuple[str, Any]]:
    """``(dotted field path, value)`` of every ``cls`` instance inside ``config``, itself
    included (path ""), e.g. every TrainConfig a step will train with."""
    found = [(path, config)] if isinstance(config, cls) else []
    if dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if dataclasses.is_dataclass(value):
                found += nested_sections(value, cls, f"{path}.{f.name}" if path else f.name)
    return found
