"""Layer selection shared by every technique: a type filter plus include/exclude patterns.

A pattern is either an exact qualified module name / prefix (``"fc"`` matches ``fc`` and
``fc.0``) or a regular expression written ``"re:<regex>"`` matched with ``re.fullmatch``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from torchslim.errors import UserError


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        try:
            return re.fullmatch(pattern[3:], name) is not None
        except re.error as exc:
            raise UserError(f"'{pattern}' is not a valid regular expression ({exc})") from None
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


def unknown_name_error(field: str, name: str, known: Collection[str], kind: str = "layer") -> UserError:
    """``field 'include': 'layer1.0.cnv1' matches no layer (close matches: layer1.0.conv1)``."""
    close = difflib.get_close_matches(name.removeprefix("re:"), sorted(known), n=3, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else f"{len(known)} {kind}s, e.g. {', '.join(sorted(known)[:3])}"
    return UserError(f"field '{field}': '{name}' matches no {kind} ({hint})")


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


# Config fields that name layers, in every technique and nested section (the registry test
# checks that every field of a layer-naming shape is listed here): lists of names or ``re:``
# patterns; single module names (a distillation tap may end in ``:input``); mappings keyed by
# layer name (pinned timing decisions, per-layer bits / sparsity).
LAYER_LIST_FIELDS = ("include", "exclude", "ignore")
LAYER_FIELDS = ("hint_layer", "guided_layer", "feature_layer", "student_feature_layer")
LAYER_KEY_FIELDS = ("decisions", "layer_bits", "layer_quality", "layer_sparsity")


def layer_names_in(config: object, path: str = "") -> list[tuple[str, str, bool]]:
    """``(field path, name, is_pattern)`` for every layer name in dataclass ``config`` and the
    dataclasses nested in it (``finetune.hint_layer``)."""
    found: list[tuple[str, str, bool]] = []
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        where = f"{path}{f.name}"
        if dataclasses.is_dataclass(value):
            found += layer_names_in(value, f"{where}.")
        elif f.name in LAYER_LIST_FIELDS and value:
            found += [(where, n, True) for n in value]
        elif f.name in LAYER_FIELDS and value:
            found.append((where, value.removesuffix(":input"), False))
        elif f.name in LAYER_KEY_FIELDS and value:
            found += [(where, n, False) for n in value]
    return found


def check_layer_names(model: nn.Module | Collection[str], config: object, where: str = "",
                      renamed: bool = False) -> None:
    """Every layer name in ``config`` must match a module of ``model`` (or a collection of
    module names): a UserError with close matches, naming ``where`` and the field.

    ``renamed``: an earlier step may have replaced layers by containers (``fc`` -> ``fc.0``,
    ``fc.1``), so a name is also accepted below an existing module and ``re:`` patterns are
    left to the step itself.
    """
    names = [n for n, _ in model.named_modules() if n] if isinstance(model, nn.Module) else [n for n in model if n]
    for field, name, is_pattern in layer_names_in(config):
        if is_pattern and name.startswith("re:"):
            try:
                re.compile(name[3:])
            except re.error as exc:  # named with its field here; _matches says it without one
                raise UserError(f"{where}field '{field}': '{name}' is not a valid regular expression ({exc})") from None
        if renamed and (name.startswith("re:") or any(name.startswith(n + ".") for n in names)):
            continue
        ok = any(_matches(n, name) for n in names) if is_pattern else name in names
        if not ok:
            raise UserError(f"{where}{unknown_name_error(field, name, names)}")
