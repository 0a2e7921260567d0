import pytest
import yaml

from torchslim.errors import UserError
from torchslim.fold.bn import FoldBNConfig
from torchslim.recipes.schema import builtin_recipes, load_recipe, parse_recipe

GOOD = """
model: {name: zoo:lenet5, kwargs: {batch_norm: true}}
data: mnist5k
train: {epochs: 1}
steps:
  - fold.bn: {exclude: [features.1]}
  - fold.bn
measure: {runtimes: [eager], batch_sizes: [1, 8]}
eval: {split: val}
"""


def _write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_recipe_parses_into_configs(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD))
    assert recipe.model.name == "zoo:lenet5" and recipe.model.kwargs == {"batch_norm": True}
    assert recipe.data.name == "mnist5k"
    assert recipe.train.epochs == 1
    assert recipe.steps == (FoldBNConfig(exclude=("features.1",)), FoldBNConfig())
    assert recipe.measure.runtimes == ("eager",) and recipe.measure.batch_sizes == (1, 8)
    assert recipe.eval.split == "val" and recipe.eval.batch_size == 256


def test_overrides_apply_before_validation(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD), ("train.epochs=7", "model.kwargs.batch_norm=false", "seed=3"))
    assert recipe.train.epochs == 7 and recipe.model.kwargs == {"batch_norm": False} and recipe.seed == 3
    with pytest.raises(UserError, match=r"r.yaml: train: field 'epochs' must be an integer, got 'x'"):
        load_recipe(_write(tmp_path, GOOD), ("train.epochs=x",))
    with pytest.raises(UserError, match="expected key=value"):
        load_recipe(_write(tmp_path, GOOD), ("train.epochs",))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["steps"].append({"fold.bm": {}}), r"steps\[3\]: unknown technique 'fold.bm' \(known: .*fold.bn"),
        (lambda r: r["steps"][0]["fold.bn"].update(exlude=["x"]), r"steps\[1\] \(fold.bn\): unknown field 'exlude'"),
        (lambda r: r["steps"][0]["fold.bn"].update(exclude=3), r"steps\[1\] \(fold.bn\): field 'exclude' must be"),
        (lambda r: r.update(modle="x"), "unknown section 'modle'"),
        (lambda r: r.pop("model"), "missing section 'model'"),
        (lambda r: r["train"].update(epochs="3"), "train: field 'epochs' must be an integer"),
        (lambda r: r["measure"].update(runtimes=["tensorrt"]), "unknown runtime 'tensorrt'"),
        (lambda r: r.pop("data"), "train: needs a 'data' section"),
        (lambda r: r.update(steps={"fold.bn": {}}), "steps: expected a list"),
        (lambda r: r.update(seed=1.5), "field 'seed' must be an integer"),
        (lambda r: r.update(eval={"split": "train"}), "eval: field 'split' must be one of 'test', 'val'"),
    ],
)
def test_every_mistake_is_one_line_naming_file_step_and_field(tmp_path, edit, message):
    raw = yaml.safe_load(GOOD)
    edit(raw)
    with pytest.raises(UserError, match=message) as info:
        parse_recipe(raw, "r.yaml")
    assert str(info.value).startswith("r.yaml: ") and "\n" not in str(info.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"bad.yaml: malformed YAML at line 3, column 1"):
        load_recipe(_write(tmp_path, "model: x\nsteps: [\n", "bad.yaml"))
    with pytest.raises(UserError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.yaml")


def test_builtin_recipes_are_valid():
    assert "demo" in builtin_recipes()
    for name in builtin_recipes():
        assert load_recipe(name).steps
