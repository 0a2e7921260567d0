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
device: cpu                    # cpu | cuda | cuda:N | auto: where training, calibration and eval run
allow_large: false             # true: lift the bounds of torchslim.core.limits (epochs, sizes)
```
Every problem is one line naming the file, the section or step, and the field. :func:`parse_recipe`
is the one validation, called by ``torchslim validate`` and first thing by ``torchslim run``:
every field through its config's own checks, then what crosses sections (data for the steps
that use it, the size bounds, the model's keyword arguments and every layer name a step gives,
on the model's structure built on the meta device: no memory, no weights). A YAML key given
twice in one mapping is an error, not the last one silently winning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from torchslim.core.config import Checked, TechniqueConfig, from_mapping
from torchslim.core.device import resolve_device
from torchslim.core.limits import check_limits
from torchslim.errors import UserError
from torchslim.pipeline import check_step_layer_names, check_steps
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.recipes.paths import (  # noqa: F401 (builtin_recipes re-exported)
    builtin_recipes, cwd_override, recipe_dir, relative_data, relative_path, resolve_recipe_path)
from torchslim.train.config import TrainConfig


@dataclass(frozen=True)
class ModelSection(Checked):
    """Where the starting model comes from: a zoo ``name``, a ``builder`` by import path
    (``my_pkg.models:make_net``, called with ``kwargs``), or a saved ``checkpoint`` directory
    (``trust_code: true`` lets it import the user classes its spec names). ``checkpoint_weights``:
    a safetensors or ``torch.save``'d state dict loaded into a name/builder model. ``input_shape``:
    (C, H, W), needed by a builder when there is no ``data`` to take it from."""

    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    builder: str | None = None
    checkpoint_weights: str | None = None
    trust_code: bool = False
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("name", "builder", "checkpoint") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give one of 'name' (zoo model), 'builder' (import path) or 'checkpoint' (saved "
                             "directory)" + (f", not {' and '.join(given)}" if given else ""))
        if self.checkpoint and (self.kwargs or self.checkpoint_weights):
            raise ValueError(f"field '{'kwargs' if self.kwargs else 'checkpoint_weights'}': a checkpoint "
                             "already holds its architecture and weights")
        if self.trust_code and not self.checkpoint:
            raise ValueError("field 'trust_code' applies to a 'checkpoint' (a builder's code is imported anyway)")
        if self.input_shape is not None and (not self.input_shape or min(self.input_shape) < 1):
            raise ValueError(f"field 'input_shape' must be positive sizes (C, H, W), got {list(self.input_shape)}")


@dataclass(frozen=True)
class DataSection(Checked):
    """One source split into train/val/test (``name``), or one source per split: ``train`` (split
    further for the splits not given) and ``val`` / ``test`` (npz: or folder: sources, each a
    whole split), see :mod:`torchslim.data.sources`."""

    name: str = ""
    train: str = ""
    val: str = ""
    test: str = ""
    image_size: int | None = None
    channels: int | None = None
    num_workers: int = 0  # folder: data only: DataLoader worker processes decoding images

    def __post_init__(self) -> None:
        for key in ("image_size", "channels"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"field '{key}' must be >= 1, got {value}")
        if self.num_workers < 0:
            raise ValueError(f"field 'num_workers' must be >= 0, got {self.num_workers}")


# The recipe's ``train:`` section trains the starting model from scratch: higher lr, more epochs
# than a recovery fine-tune (TrainConfig's own defaults).
TRAIN_DEFAULTS = TrainConfig(epochs=3, lr=0.05)


@dataclass(frozen=True)
class EvalSection(Checked):
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
    device: str | None = None
    allow_large: bool = False


_SECTIONS = ("model", "data", "train", "steps", "eval", "measure", "seed", "device", "allow_large")
_OVERRIDE = "set 'allow_large: true' at the top of the recipe"


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
    base = recipe_dir(source)
    model = _relative_paths(from_mapping(ModelSection, _shorthand(raw["model"]), f"{source}: model"), base)
    data = None if raw.get("data") is None else from_mapping(DataSection, _shorthand(raw["data"]), f"{source}: data")
    if data is not None:
        data = replace(data, **{key: relative_data(getattr(data, key), base) for key in _DATA_SOURCES})
    _check_model(model, data, source)
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
    measure = from_mapping(MeasureConfig, raw.get("measure"), f"{source}: measure")
    bad = [r for r in measure.runtimes if r not in ("eager", "onnxruntime")]
    if bad:
        raise UserError(f"{source}: measure: field 'runtimes': unknown runtime '{bad[0]}' (known: eager, onnxruntime)")
    evaluation = from_mapping(EvalSection, raw.get("eval"), f"{source}: eval")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{source}: field 'seed' must be an integer, got {seed!r}")
    device = raw.get("device")
    if device is not None:
        try:
            resolve_device(device)
        except UserError as exc:
            raise UserError(f"{source}: field 'device': {exc}") from None
    allow_large = raw.get("allow_large", False)
    if not isinstance(allow_large, bool):
        raise UserError(f"{source}: field 'allow_large' must be true or false, got {allow_large!r}")
    recipe = Recipe(model, steps, data, train, measure, evaluation, seed, source, device, allow_large)
    _check_across_sections(recipe)
    return recipe


def _check_across_sections(recipe: Recipe) -> None:
    """What no single section can check alone: data for the steps that use it, the size
    bounds (unless ``allow_large``), the model's kwargs and the layer names of every step."""
    source = recipe.source
    check_steps(recipe.steps, recipe.data is not None, f"{source}: ", recipe.allow_large, _OVERRIDE)
    if not recipe.allow_large:
        for name, section in (("data", recipe.data), ("train", recipe.train), ("measure", recipe.measure),
                              ("eval", recipe.eval)):
            check_limits(section, f"{source}: {name}: ", _OVERRIDE)
    names = _layer_names(recipe.model, source)
    if names is not None:  # a saved model's layer names are checked by each step at run time
        check_step_layer_names(names, recipe.steps, f"{source}: ")


def _layer_names(model: ModelSection, source: str) -> list[str] | None:
    """Module names of a zoo model, built on the meta device (no memory, no weights; kwargs
    checked against the builder's signature and annotations on the way), or None."""
    if model.checkpoint or not model.name:
        return None
    import torch

    from torchslim.zoo import create_model

    try:
        with torch.device("meta"):
            built = create_model(model.name, **model.kwargs)
    except UserError as exc:
        raise UserError(f"{source}: model: kwargs: {exc}") from None
    except (TypeError, ValueError) as exc:  # a builder rejecting a value, e.g. a width that does not divide
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{source}: model: kwargs: {model.name}: {first}") from None
    return [n for n, _ in built.named_modules() if n]


def _relative_paths(model: ModelSection, base: Path) -> ModelSection:
    paths = {k: relative_path(getattr(model, k), base) for k in ("checkpoint", "checkpoint_weights")
             if getattr(model, k)}
    return replace(model, **paths)


def _check_checkpoint(path: str, trust_code: bool) -> None:
    """Loads it: exactly the checks ``run`` makes (digests, the classes it would import and the
    ``trust_code`` opt-in, the architecture, the weights)."""
    from torchslim.serialize import load

    if not (Path(path) / "spec.json").is_file():
        why = "no spec.json" if Path(path).is_dir() else "it does not exist" if not Path(path).exists() else "a file"
        raise UserError(f"checkpoint '{path}' is not a saved torchslim model ({why})")
    load(path, trust_code=trust_code)


def _check_model(model: ModelSection, data: DataSection | None, source: str) -> None:
    """What ``run`` will build, checked before any work: the zoo name, the builder's import and
    signature, the weights file exists; a checkpoint is loaded (what its spec would import)."""
    from torchslim.zoo import model_info
    from torchslim.zoo.user import DATA_KWARGS, check_builder_kwargs

    try:
        if model.checkpoint:
            _check_checkpoint(model.checkpoint, model.trust_code)
        elif model.builder:
            check_builder_kwargs(model.builder, model.kwargs, DATA_KWARGS if data is not None else ())
            if data is None and model.input_shape is None:
                raise UserError("field 'input_shape': a builder without a 'data' section needs the (C, H, W) "
                                "it takes, e.g. input_shape: [3, 32, 32]")
        else:
            model_info(model.name)
        if data is not None and model.input_shape is not None:
            raise UserError("field 'input_shape': the 'data' section gives the input shape; drop input_shape")
        if model.checkpoint_weights and not Path(model.checkpoint_weights).is_file():
            raise UserError(f"field 'checkpoint_weights': '{model.checkpoint_weights}' does not exist")
    except UserError as exc:
        raise UserError(f"{source}: model: {exc}") from None


_DATA_SOURCES = ("name", "train", "val", "test")


def _check_data(data: DataSection, source: str) -> None:
    from torchslim.data.sources import HELD_OUT_KINDS

    if bool(data.name) == bool(data.train):
        raise UserError(f"{source}: data: give either 'name' (one source, split) or 'train' (one source per "
                        "split, with optional 'val' and 'test')")
    if (data.val or data.test) and not data.train:
        raise UserError(f"{source}: data: 'val' / 'test' sources go with a 'train' source, not with 'name'")
    given = {key: getattr(data, key) for key in _DATA_SOURCES if getattr(data, key)}
    if data.num_workers and not any(v.removeprefix("data:").startswith("folder:") for v in given.values()):
        raise UserError(f"{source}: data: field 'num_workers' applies to folder: data only (images decoded "
                        "per batch); the other sources are in memory")
    for key, spec in given.items():
        where = f"{source}: data: " + ("" if key == "name" else f"{key}: ")
        if key in ("val", "test") and not spec.removeprefix("data:").startswith(HELD_OUT_KINDS):
            raise UserError(f"{where}'{spec}' must be an npz: or folder: source (a whole split)")
        _check_source(spec, data, where)


def _check_source(spec: str, data: DataSection, where: str) -> None:
    from torchslim.data import list_datasets

    name = spec.removeprefix("data:")
    if name.startswith(("npz:", "folder:")):
        if not Path(name.split(":", 1)[1]).exists():
            raise UserError(f"{where}'{name.split(':', 1)[1]}' does not exist")
        if name.startswith("folder:") and data.image_size is None:
            raise UserError(f"{where}field 'image_size' is needed with folder data (images are resized "
                            f"to image_size x image_size), e.g. data: {{name: '{spec}', image_size: 32}}")
    elif name not in list_datasets():
        raise UserError(f"{where}unknown dataset '{spec}' (known: {', '.join(list_datasets())}, "
                        "npz:FILE, folder:DIR)")


class DuplicateKeyError(yaml.YAMLError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that a key given twice in one mapping is an error (YAML
    1.2 requires unique keys; PyYAML keeps the last value silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML's own error for an unhashable key follows
            if key in seen:
                raise DuplicateKeyError(f"duplicate key '{key}' at line {key_node.start_mark.line + 1} "
                                        f"(first given at line {seen[key] + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def set_override(raw: dict[str, Any], assignment: str, source: str) -> None:
    """Apply ``key.sub=value`` (value parsed as YAML) to the raw recipe mapping in place,
    e.g. ``train.epochs=1`` or ``model.kwargs.width_mult=0.5``. Steps are edited in the file.
    """
    if "=" not in assignment:
        raise UserError(f"{source}: override '{assignment}': expected key=value")
    key, _, text = assignment.partition("=")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"{source}: override '{assignment}': value is not valid YAML") from None
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if isinstance(child, str) and part in ("model", "data"):
            child = {"name": child}
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise UserError(f"{source}: override '{assignment}': '{part}' is not a mapping")
        node[part] = child
        node = child
    node[parts[-1]] = value


def load_recipe(path: str | os.PathLike, overrides: tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe file (or a built-in recipe name such as ``demo``)."""
    path = resolve_recipe_path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except OSError as exc:
        raise UserError(f"{path}: cannot read recipe ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (recipes are UTF-8 YAML)") from None
    except DuplicateKeyError as exc:
        raise UserError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: malformed YAML{where}") from None
    if isinstance(raw, dict):
        for assignment in overrides:
            set_override(raw, cwd_override(assignment), str(path))
    return parse_recipe(raw, str(path))
