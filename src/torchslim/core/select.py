"""Layer selection shared by every technique: a type filter plus include/exclude patterns.

A pattern is either an exact qualified module name / prefix (``"fc"`` matches ``fc`` and
``fc.0``) or a regular expression written ``"re:<regex>"`` matched with ``re.fullmatch``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from torchslim.errors import UserError


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


def unknown_name_error(field: str, name: str, known: Collection[str]) -> UserError:
    """``field 'include': 'layer1.0.cnv1' matches no layer (close matches: layer1.0.conv1)``."""
    close = difflib.get_close_matches(name.removeprefix("re:"), sorted(known), n=3, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else f"{len(known)} layers, e.g. {', '.join(sorted(known)[:3])}"
    return UserError(f"field '{field}': '{name}' matches no layer ({hint})")


def check_patterns(model: nn.Module, patterns: Sequence[str], field: str) -> None:
    """Every name / ``re:`` pattern must match at least one module of ``model``."""
    names = [n for n, _ in model.named_modules() if n]
    for pattern in patterns:
        if not any(_matches(n, pattern) for n in names):
            raise unknown_name_error(field, pattern, names)


def select_layers(
    model: nn.Module,
    types: tuple[type[nn.Module], ...] = (nn.Module,),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[tuple[str, nn.Module]]:
    """Modules of ``types`` whose names pass the include/exclude patterns, in module order.

    A pattern that matches no module of ``model`` at all is a UserError with close matches.
    """
    check_patterns(model, include, "include")
    check_patterns(model, exclude, "exclude")
    keep = LayerFilter(include, exclude)
    return [(n, m) for n, m in model.named_modules() if n and isinstance(m, types) and keep(n, m)]


# Layer kinds a recipe can name in a technique's ``layer_types`` field.
LAYER_KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "linear": (nn.Linear,),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
}
LayerKind = Literal["linear", "conv"]


def layer_classes(kinds: Sequence[str]) -> tuple[type[nn.Module], ...]:
    """Module classes of ``layer_types`` names (``"linear"``, ``"conv"``)."""
    classes: tuple[type[nn.Module], ...] = ()
    for kind in kinds:
        if kind not in LAYER_KINDS:
            raise UserError(f"field 'layer_types': unknown layer type '{kind}' (known: {', '.join(LAYER_KINDS)})")
        classes += LAYER_KINDS[kind]
    return classes
