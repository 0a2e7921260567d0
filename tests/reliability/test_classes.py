"""The checks hold as classes, over the whole technique registry: a new technique's layer
names, sizes and field types are checked without code of its own."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

import torchslim
from torchslim.core.config import TechniqueConfig
from torchslim.core.limits import LIMITS, check_limits
from torchslim.core.registry import techniques
from torchslim.core.select import LAYER_FIELDS, LAYER_KEY_FIELDS, LAYER_LIST_FIELDS
from torchslim.errors import UserError
from torchslim.train.config import TrainConfig

NAMES = LAYER_LIST_FIELDS + LAYER_FIELDS + LAYER_KEY_FIELDS
REGISTRY = techniques()


def _fields(cls: type, prefix: str = "") -> list[tuple[str, str, object]]:
    """(dotted path, field name, annotation) of ``cls`` and the dataclasses nested in it."""
    found = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        arms = typing.get_args(tp) or (tp,)
        nested = [a for a in arms if dataclasses.is_dataclass(a)]
        if nested:
            found += _fields(nested[0], f"{prefix}{f.name}.")
        else:
            found.append((prefix + f.name, f.name, tp))
    return found


def _layer_shaped(name: str, tp: object) -> bool:
    """A field that looks like it names layers: its name, and strings in its annotation."""
    named = name in ("include", "exclude", "ignore", "decisions") or name.endswith(("_layer", "_layers"))
    keyed = name.startswith("layer_") and "dict[str" in str(tp)  # layer_bits: {layer: bits}
    return (named or keyed) and "str" in str(tp)


@pytest.mark.parametrize("technique", REGISTRY.names())
def test_every_layer_naming_field_is_checked(technique):
    """Fields that name layers are in the shared lists, so check_layer_names sees them."""
    cls = REGISTRY.get(technique).config_cls
    missed = [path for path, name, tp in _fields(cls) if _layer_shaped(name, tp) and name not in NAMES]
    assert not missed


def _list_fields(technique: str) -> list[str]:
    cls = REGISTRY.get(technique).config_cls
    return [f.name for f in dataclasses.fields(cls) if f.name in LAYER_LIST_FIELDS]


def _public(technique: str):  # noqa: ANN202 - the technique_(model, config, ctx) function
    """The public function ``register_technique`` returned for ``technique`` (its family exports it)."""
    import importlib

    handler = REGISTRY.get(technique).handler
    for family in ("prune", "quant", "lowrank", "fold", "share", "codec", "distill"):
        module = importlib.import_module(f"torchslim.{family}")
        for name in dir(module):
            if getattr(getattr(module, name), "handler", None) is handler:
                return getattr(module, name)
    raise AssertionError(f"{technique}: no public function exported")


@pytest.mark.parametrize("technique, field", [(t, f) for t in REGISTRY.names() for f in _list_fields(t)])
def test_a_name_matching_no_layer_is_an_error_at_the_public_call(technique, field):
    model = torchslim.create_model("zoo:lenet5")
    with pytest.raises(UserError, match=rf"{technique}: field '{field}': 'clasifier.0' matches no layer "
                                        r"\(close matches: classifier.0"):
        _public(technique)(model, {field: ["clasifier.0"]})


def _int_fields_with_limits(cls: type) -> list[str]:
    return sorted({name for _, name, _ in _fields(cls)} & set(LIMITS))


BOUNDED = [t for t in REGISTRY.names() if _int_fields_with_limits(REGISTRY.get(t).config_cls)]


@pytest.mark.parametrize("technique", BOUNDED)
def test_every_bounded_field_is_bounded(technique):
    cls = REGISTRY.get(technique).config_cls
    config = cls()
    for path, name, tp in _fields(cls):
        if name not in LIMITS:
            continue
        value = (LIMITS[name] + 1,) if typing.get_origin(tp) is tuple else LIMITS[name] + 1
        top, _, leaf = path.rpartition(".")
        if top:
            inner = dataclasses.replace(getattr(config, top) or TrainConfig(), **{leaf: value})
            bad = dataclasses.replace(config, **{top: inner})
        else:
            bad = dataclasses.replace(config, **{leaf: value})
        with pytest.raises(UserError, match=rf"field '{leaf}' is {LIMITS[name] + 1}, above the maximum {LIMITS[name]}"):
            check_limits(bad, "", "allow_large")
        check_limits(config, "", "allow_large")  # the defaults are within the bounds


@pytest.mark.parametrize("technique", REGISTRY.names())
def test_float_fields_refuse_nan_and_infinity(technique):
    cls = REGISTRY.get(technique).config_cls
    floats = [name for _, name, tp in _fields(cls) if tp is float or tp == float | None]
    top = {f.name for f in dataclasses.fields(cls)}
    for name in [n for n in floats if n in top]:
        for value in (math.nan, math.inf):
            with pytest.raises(UserError, match=f"field '{name}' must be a finite number"):
                cls.from_dict({name: value}, where=technique)


def test_config_errors_are_user_errors_and_value_errors():
    from torchslim.prune import PruneChannelsConfig

    with pytest.raises(UserError) as info:
        PruneChannelsConfig(ratio=1.5)
    assert isinstance(info.value, ValueError)
    assert isinstance(REGISTRY.get("fold.bn").config_cls(), TechniqueConfig)
    assert PruneChannelsConfig(ignore=["a"]).ignore == ("a",)  # normalised as a recipe's value is


def test_allow_large_lifts_the_bounds(tmp_path):
    from torchslim.recipes.schema import load_recipe

    text = "model: zoo:lenet5\ndata: {name: mnist5k, image_size: 2048}\ntrain: {epochs: 20000}\n"
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(UserError, match="above the maximum"):
        load_recipe(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text(text + "allow_large: true\n")
    recipe = load_recipe(tmp_path / "r.yaml")
    assert recipe.train.epochs == 20000 and recipe.data.image_size == 2048 and recipe.allow_large
