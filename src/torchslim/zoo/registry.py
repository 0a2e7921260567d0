"""Name -> builder registry for the reference models (timm's ``register_model`` shape).

A builder is a function ``builder(*, in_channels=..., num_classes=..., **options)`` whose
keyword defaults are the model's defaults. The registry reads the accepted options from the
builder's signature, so unknown options fail with one clear line and ``create_model`` can
record every resolved option in ``model._torchslim_origin`` for a later rebuild.

Input shape convention: a builder that accepts ``image_size`` takes square inputs of that
size; otherwise the registered ``input_shape`` spatial size is used.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchslim.errors import UserError

Builder = Callable[..., nn.Module]

_PREFIX = "zoo:"
_REQUIRED_PARAMS = ("in_channels", "num_classes")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model without building it."""

    name: str
    input_shape: tuple[int, int, int]  # (C, H, W) at the builder's defaults
    num_classes: int
    description: str


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    builder: Builder
    defaults: dict[str, Any]


# The only module-level mutable state: filled once, at import of the model files.
_REGISTRY: dict[str, _Entry] = {}


def _builder_defaults(name: str, builder: Builder) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for param in inspect.signature(builder).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ValueError(f"builder for {name!r}: parameter {param.name!r} must be a plain keyword")
        if param.default is param.empty:
            raise ValueError(f"builder for {name!r}: parameter {param.name!r} needs a default")
        defaults[param.name] = param.default
    for required in _REQUIRED_PARAMS:
        if required not in defaults:
            raise ValueError(f"builder for {name!r} must accept {required!r}")
    return defaults


def register_model(
    name: str, *, input_shape: tuple[int, int, int], num_classes: int, description: str
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name``; registering a name twice raises ValueError.

    The builder's defaults must agree with ``input_shape`` and ``num_classes`` so that the
    metadata and the model cannot drift apart.
    """

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        if name.startswith(_PREFIX):
            raise ValueError(f"model names must not start with {_PREFIX!r}: {name!r}")
        defaults = _builder_defaults(name, builder)
        shape = tuple(int(d) for d in input_shape)
        expected = {"in_channels": shape[0], "num_classes": num_classes}
        if "image_size" in defaults:
            if shape[1] != shape[2]:
                raise ValueError(f"model {name!r}: image_size implies square inputs, got {shape}")
            expected["image_size"] = shape[1]
        for key, value in expected.items():
            if defaults[key] != value:
                raise ValueError(
                    f"model {name!r}: builder default {key}={defaults[key]!r} "
                    f"disagrees with registered {value!r}"
                )
        info = ModelInfo(name, shape, num_classes, description)  # type: ignore[arg-type]
        _REGISTRY[name] = _Entry(info, builder, defaults)
        return builder

    return decorator


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    key = name[len(_PREFIX) :] if name.startswith(_PREFIX) else name
    if key not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[key]


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model (``"zoo:"`` prefix optional)."""
    return _entry(name).info


def _check_positive_int(model: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"model {model!r}: {key} must be a positive integer, got {value!r}")


def _checked_kwargs(model: str, builder: Builder, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Each option the builder annotates as a bool checked as a config field is
    (``batch_norm: bool`` takes true or false, not ``"maybe"``, which is truthy); numbers are
    the builders' own checks (they know the valid range)."""
    from torchslim.core.config import check_value

    hints = typing.get_type_hints(builder)
    return {k: check_value(v, hints[k], f"model {model!r}: argument '{k}'") if hints.get(k) is bool else v
            for k, v in kwargs.items()}


def create_model(
    name: str, *, in_channels: int | None = None, num_classes: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build a registered model; ``name`` may carry the ``"zoo:"`` prefix.

    The model gets a JSON-serialisable ``_torchslim_origin`` dict; ``create_model(
    origin["name"], **origin["kwargs"])`` rebuilds the same architecture. Weights depend
    only on the global torch seed.
    """
    entry = _entry(name)
    key = entry.info.name
    unknown = sorted(set(kwargs) - set(entry.defaults))
    if unknown:
        accepted = ", ".join(sorted(entry.defaults))
        raise UserError(f"model {key!r} got unknown argument {unknown[0]!r}; accepted: {accepted}")
    resolved = dict(entry.defaults)
    resolved.update(_checked_kwargs(key, entry.builder, kwargs))
    if in_channels is not None:
        resolved["in_channels"] = in_channels
    if num_classes is not None:
        resolved["num_classes"] = num_classes
    for required in _REQUIRED_PARAMS:
        _check_positive_int(key, required, resolved[required])
    try:
        json.dumps(resolved)
    except TypeError as exc:
        raise UserError(f"model {key!r}: arguments must be JSON-serialisable ({exc})") from None

    model = entry.builder(**resolved)
    if "image_size" in resolved:
        size = resolved["image_size"]
        spatial = [size, size]
    else:
        spatial = list(entry.info.input_shape[1:])
    model._torchslim_origin = {
        "name": key,
        "kwargs": resolved,
        "input_shape": [resolved["in_channels"], *spatial],
        "num_classes": resolved["num_classes"],
    }
    return model


def example_input(name_or_model: str | nn.Module, batch_size: int = 1, *, seed: int = 0) -> torch.Tensor:
    """Standard-normal tensor of shape (batch_size, C, H, W), from a generator seeded with ``seed``.

    Given a model, reads the shape from its ``_torchslim_origin``; given a name, uses the
    registered default shape.
    """
    if isinstance(name_or_model, str):
        shape = list(model_info(name_or_model).input_shape)
    else:
        origin = getattr(name_or_model, "_torchslim_origin", None)
        if origin is None:
            raise UserError(
                f"{type(name_or_model).__name__} was not built by torchslim.zoo.create_model; "
                "its input shape is unknown"
            )
        shape = list(origin["input_shape"])
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, *shape), generator=generator)
