import json
import subprocess
import sys

import pytest

from torchslim.cli.main import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["profile", "zoo:resnet2000"], "unknown model 'zoo:resnet2000'"),
        (["profile", "lenet5", "--input-shape", "1,3,28,28"], "1, 3, 28, 28"),
        (["profile", "lenet5", "--input-shape", "a,b"], "--input-shape 'a,b'"),
        (["validate", "/nonexistent/recipe.yaml"], "no such recipe file"),
        (["run", "/nonexistent/recipe.yaml", "--out", "/tmp/x"], "no such recipe file"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("torchslim: error: ") and err.count("\n") == 1
    assert message in err


def test_malformed_yaml_exit_2_and_debug_shows_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    code, _, err = _run(capsys, "validate", str(bad))
    assert code == 2 and "malformed YAML" in err
    from torchslim.errors import UserError

    with pytest.raises(UserError):
        main(["--debug", "validate", str(bad)])


def test_unreadable_recipe_file(tmp_path, capsys):
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    code, _, err = _run(capsys, "validate", str(folder))
    assert code == 2 and "cannot read recipe" in err


def test_profile_prints_exact_lenet300_counts(capsys):
    code, out, _ = _run(capsys, "profile", "zoo:lenet300", "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["params"] == 266_610
    assert stats["macs"] == 784 * 300 + 300 * 100 + 100 * 10
    assert stats["flops"] == 2 * stats["macs"]


def test_ls_lists_registries(capsys):
    code, out, _ = _run(capsys, "ls")
    assert code == 0
    for item in ("fold.bn", "zoo:resnet20", "zoo:vit", "mnist5k", "digits"):
        assert item in out


def test_validate_builtin_demo(capsys):
    code, out, _ = _run(capsys, "validate", "demo")
    assert code == 0 and "ok (3 step(s): prune.channels, fold.bn, quant.ptq)" in out


def test_console_entry_point_exit_code():
    proc = subprocess.run([sys.executable, "-m", "torchslim", "profile", "zoo:nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("torchslim: error: unknown model 'zoo:nope'")
    assert "Traceback" not in proc.stderr


def test_debug_flag_after_the_subcommand(tmp_path):
    from torchslim.errors import UserError

    with pytest.raises(UserError):
        main(["validate", str(tmp_path / "missing.yaml"), "--debug"])


def _training_techniques():
    """Every registered technique whose config trains: a nested TrainConfig field (or is one)."""
    import dataclasses

    from torchslim.core.registry import techniques
    from torchslim.train import TrainConfig

    out = []
    for name in techniques().names():
        cls = techniques().get(name).config_cls
        hints = __import__("typing").get_type_hints(cls)
        fields = [f.name for f in dataclasses.fields(cls)
                  if TrainConfig in (hints[f.name], *getattr(hints[f.name], "__args__", ()))]
        if issubclass(cls, TrainConfig):
            out.append((name, None))
        out += [(name, f) for f in fields]
    return out


@pytest.mark.parametrize("technique, field", _training_techniques())
def test_validate_accepts_nested_finetune_in_every_step_that_trains(tmp_path, capsys, technique, field):
    import yaml

    section = {"epochs": 1, "lr": 0.01, "distill": "kd"}
    fields = section if field is None else {field: section}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model": "zoo:lenet5", "data": "digits", "steps": [{technique: fields}]}))
    code, out, err = _run(capsys, "validate", str(recipe))
    assert code == 0, err
    bad = {"epochs": 1, "lrr": 0.01}
    recipe.write_text(yaml.safe_dump({"model": "zoo:lenet5", "data": "digits",
                                      "steps": [{technique: bad if field is None else {field: bad}}]}))
    code, out, err = _run(capsys, "validate", str(recipe))
    where = f"steps[1] ({technique}): " + ("" if field is None else f"{field}: ")
    assert code == 2 and err.count("\n") == 1 and f"{where}unknown field 'lrr'" in err


def test_the_training_techniques_are_the_ones_that_train():
    """No config may carry its own training fields beside the nested TrainConfig."""
    import dataclasses

    from torchslim.core.registry import techniques
    from torchslim.train import TrainConfig

    training = {"epochs", "lr", "optimizer", "momentum", "weight_decay", "finetune_epochs",
                "finetune_lr", "epochs_per_step", "epochs_per_stage", "finetune_batch_size"}
    for name in techniques().names():
        cls = techniques().get(name).config_cls
        if issubclass(cls, TrainConfig):
            continue
        own = training & {f.name for f in dataclasses.fields(cls)}
        assert not own, f"{name} declares training fields {sorted(own)}: nest a TrainConfig as 'finetune'"
    assert {n for n, _ in _training_techniques()} >= {"finetune", "prune.channels", "quant.qat"}
