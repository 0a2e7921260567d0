"""Registry of techniques: a frozen config dataclass plus one handler, registered by name.

Handlers mutate the model in place and return a :class:`HandlerResult` holding the model
(possibly a new root object, e.g. after tracing) plus warnings and technique details.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def register_technique(name: str, config_cls: type) -> Callable[[Callable[..., HandlerResult]], Callable[..., HandlerResult]]:
    """Decorator: ``@register_technique("fold.bn", FoldBNConfig)`` on ``handler(model, config, ctx)``."""

    def wrap(handler: Callable[..., HandlerResult]) -> Callable[..., HandlerResult]:
        doc = (handler.__doc__ or "").strip().splitlines()
        TECHNIQUES.add(name, Technique(name, config_cls, handler, doc[0] if doc else ""))
        config_cls.name = name
        return handler

    return wrap


# Packages whose import registers the built-in techniques (each family's __init__ imports the
# modules that call register_technique); a new family adds itself here.
BUILTIN_TECHNIQUE_MODULES = (
    "torchslim.fold",
    "torchslim.prune",
    "torchslim.quant",
    "torchslim.lowrank",
    "torchslim.distill",
    "torchslim.deepcomp",
)


def techniques() -> Registry[Technique]:
    """The technique registry with every built-in technique imported."""
    import importlib

    for module in BUILTIN_TECHNIQUE_MODULES:
        importlib.import_module(module)
    return TECHNIQUES
