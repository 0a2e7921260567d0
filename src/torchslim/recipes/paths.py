"""Where a recipe and the files it names are found.

- A bare name (no path separator, no suffix) that is a built-in recipe is the built-in, whatever
  the current directory holds: ``torchslim run demo`` still works after ``torchslim demo --out
  demo`` made a ``demo/`` folder. ``builtin:demo`` says so explicitly; a file of that name is
  given as a path (``./demo``, ``demo.yaml``). Any other argument is a path.
- Paths inside a recipe (``model.checkpoint``, ``model.checkpoint_weights``, ``data: npz:FILE`` /
  ``folder:DIR``) are relative to the recipe file's folder, so a recipe runs the same from any
  current directory; ``~`` is expanded, absolute paths stay as they are. A command-line
  override (``model.checkpoint_weights=w.pt``) is typed where the user stands: its path is
  relative to the current directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from torchslim.errors import UserError

BUILTIN = "builtin:"
_FILE_SOURCES = ("npz:", "folder:")
_PATH_KEYS = ("model.checkpoint", "model.checkpoint_weights")
_DATA_KEYS = ("data", "data.name", "data.train", "data.val", "data.test")


def builtin_recipes() -> dict[str, Path]:
    folder = Path(__file__).parent / "builtin"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _bare(text: str) -> bool:
    return "/" not in text and os.sep not in text and not Path(text).suffix and not text.startswith(".")


def resolve_recipe_path(path: str | os.PathLike) -> Path:
    """The recipe file ``path`` names (see the module docstring for the rule)."""
    text = str(path)
    builtins = builtin_recipes()
    known = f"built-in recipes: {', '.join(builtins) or 'none'}"
    if text.startswith(BUILTIN):
        if text[len(BUILTIN):] not in builtins:
            raise UserError(f"{text}: no such built-in recipe ({known})")
        return builtins[text[len(BUILTIN):]]
    if _bare(text) and text in builtins:
        return builtins[text]
    candidate = Path(text).expanduser()
    if candidate.exists():
        return candidate
    raise UserError(f"{path}: no such recipe file ({known})")


def recipe_dir(source: str) -> Path:
    """The folder relative paths in the recipe ``source`` resolve against (the cwd when the
    recipe did not come from a file)."""
    path = Path(source)
    return path.resolve().parent if path.is_file() else Path.cwd()


def relative_path(text: str, base: Path) -> str:
    return str(base / Path(text).expanduser())


def relative_data(name: str, base: Path) -> str:
    """A data source name with its file or folder resolved against ``base``."""
    prefix = "data:" if name.startswith("data:") else ""
    rest = name[len(prefix):]
    for kind in _FILE_SOURCES:
        if rest.startswith(kind):
            return prefix + kind + relative_path(rest[len(kind):], base)
    return name


def cwd_override(assignment: str) -> str:
    """``key=value`` with a path value made absolute against the current directory, so that
    the recipe-folder rule leaves it as the user typed it."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or key not in _PATH_KEYS + _DATA_KEYS:
        return assignment
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return assignment  # set_override reports it
    if not isinstance(value, str) or not value:
        return assignment
    value = relative_path(value, Path.cwd()) if key in _PATH_KEYS else relative_data(value, Path.cwd())
    return f"{key}={json.dumps(value)}"
