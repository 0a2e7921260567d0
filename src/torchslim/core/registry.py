"""Registry of techniques: a frozen config dataclass plus one handler, registered by name.

Handlers mutate the model in place and return a :class:`HandlerResult` holding the model
(possibly a new root object, e.g. after tracing) plus warnings and technique details.

The one Python calling convention of every technique is what ``register_technique`` returns:

>>> from torchslim.prune import prune_channels_, PruneChannelsConfig
>>> model = prune_channels_(model, PruneChannelsConfig(target_macs=2.0), ctx)   # or a mapping
>>> ctx.results[-1].details                                                     # what it did

``technique_(model, config=None, ctx=None) -> model``: ``config`` is the technique's config
(or a mapping of its fields, validated as a recipe step is; None: the defaults); ``ctx`` a
:class:`torchslim.core.Context` (None: one built from the zoo model's example input). The
model is changed in place and returned (use the return value: a few techniques return a new
root). The step's :class:`HandlerResult` (warnings, details) is appended to ``ctx.results``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from torch import nn

from torchslim.errors import UserError

T = TypeVar("T")


@dataclass
class HandlerResult:
    model: nn.Module
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Technique:
    name: str
    config_cls: type
    handler: Callable[..., HandlerResult]
    summary: str


class Registry(Generic[T]):
    """Name -> entry map filled at import. Unknown names fail listing the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UserError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


TECHNIQUES: Registry[Technique] = Registry("technique")


def config_for(name: str, fields: Any, where: str = "") -> Any:
    """The validated config of technique ``name`` from a mapping of its fields (recipe step)."""
    try:
        technique = techniques().get(name)
    except UserError as exc:
        raise UserError(f"{where}: {exc}" if where else str(exc)) from None
    return technique.config_cls.from_dict(fields, where=f"{where} ({name})" if where else name)


def register_technique(name: str, config_cls: type) -> Callable[[Callable[..., HandlerResult]], Callable[..., nn.Module]]:
    """Decorator on ``handler(model, config, ctx) -> HandlerResult``: registers it under ``name``
    and returns the public ``technique_(model, config=None, ctx=None) -> model`` (module docstring)."""

    def wrap(handler: Callable[..., HandlerResult]) -> Callable[..., nn.Module]:
        doc = (handler.__doc__ or "").strip().splitlines()
        TECHNIQUES.add(name, Technique(name, config_cls, handler, doc[0] if doc else ""))
        config_cls.name = name

        @functools.wraps(handler)
        def apply_(model: nn.Module, config: Any = None, ctx: Any = None) -> nn.Module:
            from torchslim.core.context import Context

            if config is None or isinstance(config, Mapping):
                config = config_cls.from_dict(dict(config or {}), where=name)
            elif not isinstance(config, config_cls):
                raise UserError(f"{name}: expected a {config_cls.__name__} or a mapping of its fields, "
                                f"got {type(config).__name__}")
            from torchslim.core.select import check_layer_names

            check_layer_names(model, config, f"{name}: ")  # before any capture or work
            if ctx is None:
                from torchslim.zoo import example_input

                ctx = Context((example_input(model),))
            result = handler(model, config, ctx)
            ctx.results.append(result)
            return result.model

        apply_.handler = handler  # type: ignore[attr-defined]
        return apply_

    return wrap


# Packages whose import registers the built-in techniques (each family's __init__ imports the
# modules that call register_technique); a new family adds itself here.
BUILTIN_TECHNIQUE_MODULES = (
    "torchslim.fold",
    "torchslim.prune",
    "torchslim.quant",
    "torchslim.lowrank",
    "torchslim.distill",
    "torchslim.share",
    "torchslim.codec",
)


def techniques() -> Registry[Technique]:
    """The technique registry with every built-in technique imported."""
    import importlib

    for module in BUILTIN_TECHNIQUE_MODULES:
        importlib.import_module(module)
    return TECHNIQUES
