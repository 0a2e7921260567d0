"""Recipe models from a user's builder, a weights file, a checkpoint; paths relative to the recipe."""

import json
import sys

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from torchslim.errors import UserError
from torchslim.recipes.runner import run_recipe
from torchslim.recipes.schema import load_recipe, parse_recipe

MLP = "tests.byom_pkg.models:make_mlp"


def _bad(model, message, data="digits"):
    raw = {"model": model, "steps": []}
    if data is not None:
        raw["data"] = data
    with pytest.raises(UserError) as info:
        parse_recipe(raw, "r.yaml")
    text = str(info.value)
    assert text.startswith("r.yaml: model: ") and "\n" not in text
    assert message in text, text


@pytest.mark.parametrize("model, message", [
    ({"builder": "tests.byom_pkg.nope:make"}, "module 'tests.byom_pkg.nope' is not importable"),
    ({"builder": "tests.byom_pkg.models:make_mpl"}, "'tests.byom_pkg.models' has no attribute 'make_mpl'"),
    ({"builder": "tests.byom_pkg.models:NOT_CALLABLE"}, "int object is not callable"),
    ({"builder": MLP, "kwargs": {"hiden": 3}}, f"builder '{MLP}' does not accept argument 'hiden'"),
    ({"builder": "torch.nn:Linear", "kwargs": {"in_features": 3}}, "missing a required argument: 'out_features'"),
    ({"builder": MLP, "name": "zoo:lenet5"}, "give one of 'name' (zoo model), 'builder' (import path) or "
                                             "'checkpoint' (saved directory), not name and builder"),
    ({"kwargs": {"hidden": 3}}, "give one of 'name'"),
    ({"builder": MLP, "trust_code": True}, "field 'trust_code' applies to a 'checkpoint'"),
    ({"builder": MLP, "input_shape": [1, 8, 8]}, "field 'input_shape': the 'data' section gives the input shape"),
    ({"builder": MLP, "checkpoint_weights": "missing.pt"}, "field 'checkpoint_weights': "),
    ({"name": "zoo:lenet5", "checkpoint_weights": "missing.safetensors"}, "missing.safetensors' does not exist"),
])
def test_validate_checks_the_model_section_before_any_work(model, message):
    _bad(model, message)


def test_a_builder_without_data_needs_its_input_shape():
    _bad({"builder": MLP}, "field 'input_shape': a builder without a 'data' section needs the (C, H, W)", data=None)
    _bad({"builder": MLP, "input_shape": [1, 0, 8]}, "field 'input_shape' must be positive sizes", data=None)
    recipe = parse_recipe({"model": {"builder": MLP, "input_shape": [1, 8, 8]}, "steps": []}, "r.yaml")
    assert recipe.model.input_shape == (1, 8, 8)


def test_checkpoint_sections_are_checked_against_what_the_spec_can_build(tmp_path, monkeypatch):
    from torchslim.serialize import save
    from tests.byom_pkg.models import Scaled

    save(Scaled(), tmp_path / "m")
    _bad({"checkpoint": str(tmp_path / "m"), "kwargs": {"features": 3}}, "field 'kwargs': a checkpoint already")
    _bad({"checkpoint": str(tmp_path)}, "is not a saved torchslim model (no spec.json)")
    # user classes: named, and imported only with the opt-in
    _bad({"checkpoint": str(tmp_path / "m")}, "tests.byom_pkg.models")
    _bad({"checkpoint": str(tmp_path / "m")}, "trust_code: true")
    recipe = parse_recipe({"model": {"checkpoint": str(tmp_path / "m"), "trust_code": True}, "data": "digits",
                           "steps": [], "measure": {"runtimes": []}}, "r.yaml")
    report = run_recipe(recipe, tmp_path / "out", progress=False)
    assert report.initial.params == 64 * 10 + 10
    # a class whose module no longer imports (the user's package moved): one line at validate
    project = tmp_path / "project"
    (project / "gone_pkg").mkdir(parents=True)
    (project / "gone_pkg" / "__init__.py").write_text(
        "from torch import nn\n\nclass Net(nn.Linear):\n    def __init__(self):\n        super().__init__(64, 10)\n")
    monkeypatch.syspath_prepend(str(project))
    from gone_pkg import Net

    save(Net(), tmp_path / "gone")
    monkeypatch.delitem(sys.modules, "gone_pkg")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(project)])
    _bad({"checkpoint": str(tmp_path / "gone"), "trust_code": True}, "gone_pkg")


def test_paths_resolve_relative_to_the_recipe_folder(tmp_path, monkeypatch):
    from torchslim.zoo import create_model

    project = tmp_path / "project"
    (project / "weights").mkdir(parents=True)
    save_file(create_model("lenet300").state_dict(), str(project / "weights" / "w.safetensors"))
    rng = np.random.default_rng(0)
    np.savez(project / "data.npz", x=rng.random((60, 28, 28)).astype(np.float32), y=np.arange(60) % 10)
    recipe_file = project / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump({
        "model": {"name": "zoo:lenet300", "checkpoint_weights": "weights/w.safetensors"},
        "data": "npz:data.npz", "steps": []}))
    monkeypatch.chdir(tmp_path)  # elsewhere: the recipe's own folder is what counts
    recipe = load_recipe("project/recipe.yaml")
    assert recipe.model.checkpoint_weights == str(project / "weights" / "w.safetensors")
    assert recipe.data.name == f"npz:{project / 'data.npz'}"
    # an override on the command line is typed where the user stands: relative to the cwd
    (tmp_path / "mine.npz").write_bytes((project / "data.npz").read_bytes())
    overrides = ("data=npz:mine.npz", "model.checkpoint_weights=project/weights/w.safetensors")
    recipe = load_recipe("project/recipe.yaml", overrides)
    assert recipe.data.name == f"npz:{tmp_path / 'mine.npz'}"
    assert recipe.model.checkpoint_weights == str(project / "weights" / "w.safetensors")
    (project / "weights" / "w.safetensors").unlink()
    with pytest.raises(UserError, match=f"'{project / 'weights' / 'w.safetensors'}' does not exist"):
        load_recipe("project/recipe.yaml")


def test_run_loads_checkpoint_weights_exactly(tmp_path):
    from torchslim.data import load_data
    from torchslim.train import evaluate
    from torchslim.zoo import create_model

    torch.manual_seed(7)
    reference = create_model("lenet300", num_classes=10).eval()
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    recipe = parse_recipe({"model": {"name": "zoo:lenet300", "checkpoint_weights": str(tmp_path / "w.pt")},
                           "data": {"name": "digits", "image_size": 28}, "steps": [],
                           "measure": {"runtimes": []}}, "r.yaml")
    report = run_recipe(recipe, tmp_path / "out", progress=False)
    data = load_data("digits", image_size=28, channels=None, seed=0)
    assert report.initial.accuracy == evaluate(reference, data.test)


def test_run_builds_a_users_builder_with_the_datas_channels_and_classes(tmp_path):
    """fold.bn on a Sequential MLP changes nothing: the final model computes what the builder built."""
    recipe = parse_recipe({"model": {"builder": MLP, "kwargs": {"hidden": 12}}, "data": "digits",
                           "steps": ["fold.bn"], "measure": {"runtimes": []}}, "r.yaml")
    report = run_recipe(recipe, tmp_path, progress=False)
    # 64 -> 12 -> 10 (digits: 1 channel of 8x8, 10 classes)
    assert report.initial.params == 64 * 12 + 12 + 12 * 10 + 10
    assert report.model["builder"] == {"path": MLP, "kwargs": {"hidden": 12, "in_channels": 1, "num_classes": 10}}
    assert json.loads((tmp_path / "report.json").read_text())["steps"][0]["technique"] == "fold.bn"


def test_a_builders_own_classes_are_reused_from_the_cache_and_resumed(tmp_path):
    """The trained starting model and each finished step are saved with the user's classes; a
    second run reuses both instead of failing on trust_code or silently redoing them."""
    recipe = parse_recipe({"model": {"builder": "tests.byom_pkg.models:make_scaled"}, "data": "digits",
                           "train": {"epochs": 1}, "steps": ["fold.bn"], "measure": {"runtimes": []}}, "r.yaml")
    first = run_recipe(recipe, tmp_path, progress=False)
    saved = {p: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").rglob("model.safetensors")}
    assert len(saved) == 2  # the trained model and step 1
    again = run_recipe(recipe, tmp_path, progress=False)
    assert {p: p.stat().st_mtime_ns for p in saved} == saved
    assert again.initial.accuracy == first.initial.accuracy and again.steps[0].after == first.steps[0].after
