"""Recipe schema, validated completely before any model is built.

```yaml
model: zoo:lenet5              # or {name: zoo:lenet5, kwargs: {...}, checkpoint: DIR}
data: mnist5k                  # or {name: mnist5k, image_size: 32, channels: 3}
train: {epochs: 3, lr: 0.05}   # optional: train first (a TrainConfig; cached under OUT/checkpoints)
steps:
  - fold.bn: {}                # one technique per item: {name: {fields}}
eval: {split: test}            # accuracy before/after every step (needs data)
measure: {runtimes: [eager, onnxruntime], batch_sizes: [1], threads: 2}
seed: 0
```
Every problem is one line naming the file, the section or step, and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from torchslim.core.config import TechniqueConfig, from_mapping
from torchslim.pipeline import check_training_data
from torchslim.errors import UserError
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.train.config import TrainConfig


@dataclass(frozen=True)
class ModelSection:
    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None


@dataclass(frozen=True)
class DataSection:
    name: str = ""
    image_size: int | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        for key in ("image_size", "channels"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"field '{key}' must be >= 1, got {value}")


# The recipe's ``train:`` section trains the starting model from scratch: higher lr, more epochs
# than a recovery fine-tune (TrainConfig's own defaults).
TRAIN_DEFAULTS = TrainConfig(epochs=3, lr=0.05)


@dataclass(frozen=True)
class EvalSection:
    """Top-1 accuracy before and after every step, on this split of ``data``."""

    split: Literal["test", "val"] = "test"
    batch_size: int = 256

    def __post_init__(self) -> None:
        _positive(self, "batch_size")


def _positive(section: Any, *keys: str) -> None:
    for key in keys:
        if getattr(section, key) < 1:
            raise ValueError(f"field '{key}' must be >= 1, got {getattr(section, key)}")


@dataclass(frozen=True)
class Recipe:
    model: ModelSection
    steps: tuple[TechniqueConfig, ...]
    data: DataSection | None = None
    train: TrainConfig | None = None
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    eval: EvalSection = field(default_factory=EvalSection)
    seed: int = 0
    source: str = "<recipe>"


_SECTIONS = ("model", "data", "train", "steps", "eval", "measure", "seed")


def _shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def _step(item: Any, where: str) -> TechniqueConfig:
    from torchslim.core.registry import config_for

    if isinstance(item, str):
        name, fields = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        ((name, fields),) = item.items()
    else:
        raise UserError(f"{where}: a step is a technique name or a one-key mapping {{technique: {{fields}}}}")
    return config_for(name, fields, where)


def parse_recipe(raw: Any, source: str = "<recipe>") -> Recipe:
    """Validate a recipe mapping (as loaded from YAML) into a :class:`Recipe`."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a recipe is a mapping with sections {', '.join(_SECTIONS)}")
    for key in raw:
        if key not in _SECTIONS:
            raise UserError(f"{source}: unknown section '{key}' (known sections: {', '.join(_SECTIONS)})")
    if "model" not in raw:
        raise UserError(f"{source}: missing section 'model'")
    model = from_mapping(ModelSection, _shorthand(raw["model"]), f"{source}: model")
    if not model.name and not model.checkpoint:
        raise UserError(f"{source}: model: give a zoo 'name' or a saved 'checkpoint' directory")
    _check_model(model, source)
    data = None if raw.get("data") is None else from_mapping(DataSection, _shorthand(raw["data"]), f"{source}: data")
    if data is not None:
        _check_data(data, source)
    train = None if raw.get("train") is None else from_mapping(TrainConfig, raw["train"], f"{source}: train",
                                                               base=TRAIN_DEFAULTS)
    if train is not None and train.epochs < 1:
        raise UserError(f"{source}: train: field 'epochs' must be >= 1, got {train.epochs}")
    if train is not None and train.distill != "none":
        raise UserError(f"{source}: train: field 'distill': the train section trains the starting model from "
                        "scratch, with no teacher (distil in a step's finetune: section instead)")
    if train is not None and data is None:
        raise UserError(f"{source}: train: needs a 'data' section")
    if train is not None and model.checkpoint:
        raise UserError(f"{source}: train: a 'checkpoint' model is already trained; drop one of them")
    steps_raw = raw.get("steps") or []
    if not isinstance(steps_raw, list):
        raise UserError(f"{source}: steps: expected a list of steps")
    steps = tuple(_step(item, f"{source}: steps[{i + 1}]") for i, item in enumerate(steps_raw))
    check_training_data(steps, data is not None, f"{source}: ")
    measure = from_mapping(MeasureConfig, raw.get("measure"), f"{source}: measure")
    bad = [r for r in measure.runtimes if r not in ("eager", "onnxruntime")]
    if bad:
        raise UserError(f"{source}: measure: field 'runtimes': unknown runtime '{bad[0]}' (known: eager, onnxruntime)")
    evaluation = from_mapping(EvalSection, raw.get("eval"), f"{source}: eval")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{source}: field 'seed' must be an integer, got {seed!r}")
    return Recipe(model, steps, data, train, measure, evaluation, seed, source)


def _check_model(model: ModelSection, source: str) -> None:
    from torchslim.zoo import model_info

    if model.checkpoint:
        if not (Path(model.checkpoint) / "spec.json").is_file():
            raise UserError(f"{source}: model: checkpoint '{model.checkpoint}' is not a saved torchslim model")
        return
    try:
        model_info(model.name)
    except UserError as exc:
        raise UserError(f"{source}: model: {exc}") from None


def _check_data(data: DataSection, source: str) -> None:
    from torchslim.data import list_datasets

    name = data.name.removeprefix("data:")
    if name.startswith(("npz:", "folder:")):
        if not Path(name.split(":", 1)[1]).exists():
            raise UserError(f"{source}: data: '{name.split(':', 1)[1]}' does not exist")
    elif name not in list_datasets():
        raise UserError(f"{source}: data: unknown dataset '{data.name}' (known: {', '.join(list_datasets())}, "
                        "npz:FILE, folder:DIR)")


def set_override(raw: dict[str, Any], assignment: str, source: str) -> None:
    """Apply ``key.sub=value`` (value parsed as YAML) to the raw recipe mapping in place,
    e.g. ``train.epochs=1`` or ``model.kwargs.width_mult=0.5``. Steps are edited in the file.
    """
    if "=" not in assignment:
        raise UserError(f"override '{assignment}': expected key=value")
    key, _, text = assignment.partition("=")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"override '{assignment}': value is not valid YAML") from None
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if isinstance(child, str) and part in ("model", "data"):
            child = {"name": child}
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise UserError(f"override '{assignment}': {source}: '{part}' is not a mapping")
        node[part] = child
        node = child
    node[parts[-1]] = value


def load_recipe(path: str | os.PathLike, overrides: tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe file (or a built-in recipe name such as ``demo``)."""
    path = resolve_recipe_path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read recipe ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (recipes are UTF-8 YAML)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: malformed YAML{where}") from None
    if isinstance(raw, dict):
        for assignment in overrides:
            set_override(raw, assignment, str(path))
    return parse_recipe(raw, str(path))


def builtin_recipes() -> dict[str, Path]:
    folder = Path(__file__).parent / "builtin"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_recipe_path(path: str | os.PathLike) -> Path:
    candidate = Path(path)
    if candidate.exists():
        return candidate
    builtins = builtin_recipes()
    if str(path) in builtins:
        return builtins[str(path)]
    raise UserError(f"{path}: no such recipe file (built-in recipes: {', '.join(builtins) or 'none'})")
