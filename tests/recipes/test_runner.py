import json

from torchslim.recipes.runner import run_recipe
from torchslim.recipes.schema import parse_recipe
from torchslim.serialize import load

RECIPE = {
    "model": {"name": "zoo:lenet5", "kwargs": {"batch_norm": True}},
    "data": "mnist5k",
    "train": {"epochs": 1},
    "steps": ["fold.bn"],
    "measure": {"runtimes": ["eager", "onnxruntime"], "batch_sizes": [1]},
}


def test_recipe_end_to_end_writes_every_output_and_reuses_the_checkpoint(tmp_path):
    recipe = parse_recipe(RECIPE, "e2e.yaml")
    report = run_recipe(recipe, tmp_path, progress=False)
    for name in ("report.json", "report.md", "accuracy_vs_size.png", "accuracy_vs_macs.png",
                 "accuracy_vs_latency.png", "model.onnx", "model/spec.json", "model/model.safetensors"):
        assert (tmp_path / name).is_file(), name
    data = json.loads((tmp_path / "report.json").read_text())
    step = data["steps"][0]
    assert step["technique"] == "fold.bn" and step["details"]["folded_count"] == 4
    assert step["max_abs_error"] < 1e-5
    # folding is exact, so accuracy is identical; one epoch of LeNet-5 on MNIST-5k is well above chance
    assert step["before"]["accuracy"] == step["after"]["accuracy"] > 0.8
    assert {p["runtime"] for p in step["after"]["latency"]} == {"eager", "onnxruntime"}

    # The saved final model reproduces the report's accuracy.
    from torchslim.data import load_dataset
    from torchslim.train import evaluate

    assert evaluate(load(tmp_path / "model"), load_dataset("mnist5k").test) == step["after"]["accuracy"]

    # Second run: the trained checkpoint is reused, so the starting accuracy is identical.
    (checkpoint,) = (tmp_path / "checkpoints").glob("zoo_*")
    stamp = (checkpoint / "model.safetensors").stat().st_mtime_ns
    again = run_recipe(recipe, tmp_path, progress=False)
    assert (checkpoint / "model.safetensors").stat().st_mtime_ns == stamp
    assert again.initial.accuracy == report.initial.accuracy


def test_interrupted_training_resumes_from_the_last_epoch(tmp_path, monkeypatch):
    """Kill training after epoch 1 of 2; the re-run resumes and matches an uninterrupted run."""
    import torch

    import torchslim.train.loop as loop

    recipe = parse_recipe({**RECIPE, "train": {"epochs": 2}, "steps": [], "measure": {"runtimes": []}}, "r.yaml")
    clean = run_recipe(recipe, tmp_path / "clean", progress=False)

    real_save = loop.save_checkpoint
    calls = []

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls.append(kwargs["epochs_done"])
        if kwargs["epochs_done"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    try:
        run_recipe(recipe, tmp_path / "cut", progress=False)
    except KeyboardInterrupt:
        pass
    assert calls == [1]
    assert list((tmp_path / "cut" / "checkpoints").glob("*.partial.pt"))
    resumed = run_recipe(recipe, tmp_path / "cut", progress=False)
    assert calls == [1, 2]  # only the second epoch ran again
    assert resumed.initial.accuracy == clean.initial.accuracy
    assert not list((tmp_path / "cut" / "checkpoints").glob("*.partial.pt"))
    a, b = load(tmp_path / "clean" / "model"), load(tmp_path / "cut" / "model")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_model_data_shape_mismatch_is_one_line_before_training(tmp_path):
    import pytest

    from torchslim.errors import UserError

    recipe = parse_recipe({**RECIPE, "data": {"name": "mnist5k", "image_size": 32}}, "r.yaml")
    with pytest.raises(UserError, match=r"model LeNet5 failed on input shape 1x1x32x32") as info:
        run_recipe(recipe, tmp_path, progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "checkpoints").exists()


def test_class_count_mismatch_is_a_user_error(tmp_path):
    import pytest

    from torchslim.errors import UserError

    recipe = parse_recipe({**RECIPE, "model": {"name": "zoo:lenet5", "kwargs": {"num_classes": 5}}}, "r.yaml")
    with pytest.raises(UserError, match="r.yaml: model: it has 5 outputs but data 'mnist5k' has 10 classes"):
        run_recipe(recipe, tmp_path, progress=False)


def test_interrupted_compression_resumes_after_the_last_finished_step(tmp_path, monkeypatch):
    import dataclasses

    import pytest
    import torch

    from torchslim.core.registry import TECHNIQUES

    recipe = parse_recipe({**RECIPE, "steps": ["fold.bn", {"prune.magnitude": {"sparsity": 0.5, "finetune": {"epochs": 1}}}],
                           "measure": {"runtimes": []}}, "r.yaml")
    clean = run_recipe(recipe, tmp_path / "clean", progress=False)

    original = TECHNIQUES.get("prune.magnitude")
    calls = {"fold.bn": 0, "prune.magnitude": 0}
    fold = TECHNIQUES.get("fold.bn")

    def counting(technique, die):
        def handler(model, config, ctx):
            calls[technique.name] += 1
            if die:
                raise KeyboardInterrupt
            return technique.handler(model, config, ctx)
        return dataclasses.replace(technique, handler=handler)

    monkeypatch.setitem(TECHNIQUES._entries, "fold.bn", counting(fold, die=False))
    monkeypatch.setitem(TECHNIQUES._entries, "prune.magnitude", counting(original, die=True))
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, tmp_path / "cut", progress=False)
    assert calls == {"fold.bn": 1, "prune.magnitude": 1}

    monkeypatch.setitem(TECHNIQUES._entries, "prune.magnitude", counting(original, die=False))
    resumed = run_recipe(recipe, tmp_path / "cut", progress=False)
    assert calls == {"fold.bn": 1, "prune.magnitude": 2}  # fold.bn was not redone
    assert [s.technique for s in resumed.steps] == ["fold.bn", "prune.magnitude"]
    assert resumed.steps[0].after.accuracy == clean.steps[0].after.accuracy
    assert resumed.final.accuracy == clean.final.accuracy
    a, b = load(tmp_path / "clean" / "model"), load(tmp_path / "cut" / "model")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
