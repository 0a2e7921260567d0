"""Layer selection shared by every technique: a type filter plus include/exclude patterns.

A pattern is either an exact qualified module name / prefix (``"fc"`` matches ``fc`` and
``fc.0``) or a regular expression written ``"re:<regex>"`` matched with ``re.fullmatch``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return name == pattern or name.startswith(pattern + ".")


@dataclass(frozen=True)
class LayerFilter:
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    predicate: Callable[[str, nn.Module], bool] | None = None

    def __call__(self, name: str, module: nn.Module) -> bool:
        if self.include and not any(_matches(name, p) for p in self.include):
            return False
        if any(_matches(name, p) for p in self.exclude):
            return False
        return self.predicate is None or self.predicate(name, module)


def select_layers(
    model: nn.Module,
    types: tuple[type[nn.Module], ...] = (nn.Module,),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[tuple[str, nn.Module]]:
    """Modules of ``types`` whose names pass the include/exclude patterns, in module order."""
    keep = LayerFilter(include, exclude)
    return [(n, m) for n, m in model.named_modules() if n and isinstance(m, types) and keep(n, m)]
