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


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(model="zoo:lenet55"), r"r.yaml: model: unknown model 'zoo:lenet55'"),
        (lambda r: r.update(model={"checkpoint": "/nonexistent/dir"}), "checkpoint '/nonexistent/dir' is not a saved"),
        (lambda r: r.update(data="mnist6k"), r"r.yaml: data: unknown dataset 'mnist6k' \(known: digits, mnist5k"),
        (lambda r: r.update(data={"name": "mnist5k", "image_size": 0}), "data: field 'image_size' must be >= 1"),
        (lambda r: r["train"].update(optimizer="adam"), "train: field 'optimizer' must be one of 'sgd', 'adamw'"),
        (lambda r: r["train"].update(epochs=0), "train: field 'epochs' must be >= 1, got 0"),
        (lambda r: r["measure"].update(batch_sizes=[0]), "measure: field 'batch_sizes' must hold integers >= 1"),
        (lambda r: r["measure"].update(runtimes=["eager", "eager"]), "lists a runtime twice"),
        (lambda r: r.update(eval={"batch_size": 0}), "eval: field 'batch_size' must be >= 1"),
    ],
)
def test_validation_catches_what_run_would_fail_on(edit, message):
    raw = yaml.safe_load(GOOD)
    edit(raw)
    with pytest.raises(UserError, match=message):
        parse_recipe(raw, "r.yaml")


def test_checkpoint_and_train_are_exclusive(tmp_path):
    from torchslim.serialize import save
    from torchslim.zoo import create_model

    save(create_model("lenet5"), tmp_path / "m")
    raw = yaml.safe_load(GOOD)
    raw["model"] = {"checkpoint": str(tmp_path / "m")}
    with pytest.raises(UserError, match="train: a 'checkpoint' model is already trained"):
        parse_recipe(raw, "r.yaml")


def test_exponent_floats_and_non_utf8_files(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD), ("train.lr=1e-3",))
    assert recipe.train.lr == 0.001
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UserError, match="not a text file"):
        load_recipe(binary)


NESTED = {"model": "zoo:lenet5", "data": "digits",
          "steps": [{"finetune": {"epochs": 1}}, {"prune.channels": {"ratio": 0.25, "finetune": {"epochs": 1}}}]}


def test_nested_finetune_sections_merge_over_the_step_defaults():
    from torchslim.train import TrainConfig

    recipe = parse_recipe({**NESTED, "steps": [{"prune.channels": {"finetune": {"epochs": 1, "distill": "kd"}}}]})
    (step,) = recipe.steps
    assert step.finetune == TrainConfig(epochs=1, distill="kd")
    assert step.to_dict()["finetune"]["distill"] == "kd"
    train = parse_recipe({**NESTED, "train": {"epochs": 2}}).train
    assert (train.epochs, train.lr) == (2, 0.05)  # the train section keeps its from-scratch defaults


@pytest.mark.parametrize(
    "steps, message",
    [
        ([{"prune.channels": {"finetune": {"lrr": 0.1}}}],
         r"r.yaml: steps\[1\] \(prune.channels\): finetune: unknown field 'lrr' \(known fields: .*lr,"),
        ([{"prune.channels": {"finetune": {"epochs": -1}}}],
         r"r.yaml: steps\[1\] \(prune.channels\): finetune: field 'epochs' must be >= 0, got -1"),
        ([{"prune.channels": {"finetune": {"distill": "kdd"}}}],
         r"steps\[1\] \(prune.channels\): finetune: field 'distill' must be one of 'none', 'kd'"),
        ([{"prune.channels": {"finetune": 3}}],
         r"steps\[1\] \(prune.channels\): field 'finetune' must be a mapping of fields or null, got 3"),
        ([{"finetune": {"epochs": 1, "momentum": 1.5}}],
         r"steps\[1\] \(finetune\): field 'momentum' must be in \[0, 1\), got 1.5"),
    ],
)
def test_misspelt_nested_fields_are_one_line_errors(steps, message):
    with pytest.raises(UserError, match=message):
        parse_recipe({**NESTED, "steps": steps}, "r.yaml")


def test_a_step_that_trains_needs_data_and_says_which_field():
    no_data = {k: v for k, v in NESTED.items() if k != "data"}
    with pytest.raises(UserError, match=r"r.yaml: steps\[1\] \(finetune\): training needs a 'data' section"):
        parse_recipe(no_data, "r.yaml")
    with pytest.raises(UserError, match=r"steps\[1\] \(prune.channels\): finetune: training needs a 'data' section"):
        parse_recipe({**no_data, "steps": [NESTED["steps"][1]]}, "r.yaml")
    parse_recipe({**no_data, "steps": [{"prune.channels": {"finetune": {"epochs": 0}}}]}, "r.yaml")  # no training


def test_train_section_rejects_distillation():
    with pytest.raises(UserError, match="r.yaml: train: field 'distill'"):
        parse_recipe({**NESTED, "train": {"distill": "kd"}}, "r.yaml")
