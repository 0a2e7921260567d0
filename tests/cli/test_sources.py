"""The CLI's model and recipe arguments: builders, saved models, .tsc files, missing paths,
built-in names never shadowed by the current directory, and the --out lock."""

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from torchslim.cli.main import main
from torchslim.core.outdir import LOCK_FILE

MLP = "tests.byom_pkg.models:make_mlp"
LENET300_PARAMS = 266_610


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _one_line_error(code, err, message):
    assert code == 2 and err.startswith("torchslim: error: ") and err.count("\n") == 1, err
    assert message in err, err


@pytest.mark.parametrize("argv, message", [
    (["profile", "./missing_model"], "./missing_model: no such file or directory"),
    (["profile", "runs/x/model.tsc"], "runs/x/model.tsc: no such file or directory"),
    (["profile", "tests.byom_pkg.nope:make"], "module 'tests.byom_pkg.nope' is not importable"),
    (["profile", MLP], f"{MLP}: its input shape is unknown; pass --input-shape with the batch"),
    (["profile", MLP, "--kwargs", "{hiden: 3}", "--input-shape", "1,1,8,8"], "does not accept argument 'hiden'"),
    (["profile", MLP, "--kwargs", "[1]"], "--kwargs '[1]': expected a mapping"),
])
def test_profile_mistakes_are_one_line(capsys, argv, message):
    _one_line_error(*_run(capsys, *argv)[::2], message)


def test_profile_a_builder_counts_exactly(capsys):
    code, out, _ = _run(capsys, "profile", MLP, "--kwargs", "{hidden: 12}", "--input-shape", "1,1,8,8", "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["params"] == 64 * 12 + 12 + 12 * 10 + 10 and stats["macs"] == 64 * 12 + 12 * 10


def test_profile_a_saved_model_and_its_tsc_file_count_like_the_zoo_model(tmp_path, capsys):
    from torchslim.codec import write_model
    from torchslim.serialize import save
    from torchslim.zoo import create_model

    model = create_model("lenet300")
    save(model, tmp_path / "saved")
    write_model(model, tmp_path / "model.tsc")
    (tmp_path / "notes.txt").write_text("x")
    for target in (tmp_path / "saved", tmp_path / "model.tsc"):
        code, out, err = _run(capsys, "profile", str(target), "--json")
        assert code == 0, err
        assert json.loads(out)["params"] == LENET300_PARAMS
    _one_line_error(*_run(capsys, "profile", str(tmp_path / "notes.txt"))[::2],
                    "notes.txt: not a saved model directory or a compressed .tsc file")


def test_profile_a_saved_user_model_needs_the_opt_in(tmp_path, capsys):
    from tests.byom_pkg.models import Scaled
    from torchslim.serialize import save

    save(Scaled(), tmp_path / "m")
    _one_line_error(*_run(capsys, "profile", str(tmp_path / "m"), "--input-shape", "1,1,8,8")[::2],
                    "tests.byom_pkg.models:Scaled); importing them runs that code")
    code, out, err = _run(capsys, "profile", str(tmp_path / "m"), "--input-shape", "1,1,8,8", "--trust-code", "--json")
    assert code == 0 and json.loads(out)["params"] == 64 * 10 + 10, err
    assert f"on the command line: torchslim profile {tmp_path / 'm'} --trust-code" in _run(
        capsys, "profile", str(tmp_path / "m"))[2]


def test_zoo_names_and_builtin_recipes_are_not_shadowed_by_the_current_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lenet300").mkdir()  # e.g. a folder a user named after the model
    (tmp_path / "demo").mkdir()  # what `torchslim demo --out demo` leaves behind
    code, out, _ = _run(capsys, "profile", "lenet300", "--json")
    assert code == 0 and json.loads(out)["params"] == LENET300_PARAMS
    for name in ("demo", "builtin:demo"):
        code, out, err = _run(capsys, "validate", name)
        assert code == 0 and "builtin/demo.yaml: ok (3 step(s)" in out, err
    _one_line_error(*_run(capsys, "validate", "./demo")[::2], "cannot read recipe")  # a path is a path
    _one_line_error(*_run(capsys, "validate", "builtin:nope")[::2], "builtin:nope: no such built-in recipe")
    (tmp_path / "mine.yaml").write_text("model: zoo:lenet5\nsteps: [fold.bn]\n")
    code, out, _ = _run(capsys, "validate", "mine.yaml")
    assert code == 0 and out.startswith("mine.yaml: ok (1 step(s): fold.bn)")


def test_demo_command_runs_the_builtin_recipe_even_with_a_demo_folder(tmp_path, capsys, monkeypatch):
    import torchslim.recipes.runner as runner

    seen = {}

    def fake_run(recipe, out_dir, progress=True):
        seen["source"], seen["out"] = recipe.source, out_dir
        raise KeyboardInterrupt  # stop before any work; the CLI reports it as interrupted

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    monkeypatch.setattr(runner, "run_recipe", fake_run)
    code, _, err = _run(capsys, "demo", "--out", "demo")
    assert code == 130 and "interrupted" in err
    assert seen["source"].endswith(os.path.join("recipes", "builtin", "demo.yaml")) and seen["out"] == "demo"


def test_run_into_a_folder_in_use_refuses_in_one_line_and_writes_nothing(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model": "zoo:lenet300", "steps": ["fold.bn"], "measure": {"runtimes": []}}))
    out = tmp_path / "out"
    out.mkdir()
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started_utc": "2026-01-01T00:00:00+00:00"}
    (out / LOCK_FILE).write_text(json.dumps(holder))
    _one_line_error(*_run(capsys, "run", str(recipe), "--out", str(out))[::2],
                    f"{out}: another run is writing here (pid {os.getppid()} on host {socket.gethostname()}")
    assert [p.name for p in out.iterdir()] == [LOCK_FILE]
    holder["pid"] = _dead_pid()  # the holder was killed: its lock is taken over, with a warning
    (out / LOCK_FILE).write_text(json.dumps(holder))
    code, _, err = _run(capsys, "run", str(recipe), "--out", str(out))
    assert code == 0, err
    assert f"torchslim: warning: {out}: taking over the lock of a run that is no longer running (pid " in err
    assert (out / "report.json").is_file() and not (out / LOCK_FILE).exists()


def test_run_into_an_impossible_out_is_one_line_before_any_work(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model": "zoo:lenet300", "steps": []}))
    (tmp_path / "file").write_text("x")
    _one_line_error(*_run(capsys, "run", str(recipe), "--out", str(tmp_path / "file" / "out"))[::2],
                    f"{tmp_path / 'file' / 'out'}: cannot create the output directory")


def test_the_users_package_is_found_in_the_current_directory(tmp_path, capsys, monkeypatch):
    """A console script's sys.path starts at its bin/ folder, not the cwd; the CLI adds the cwd
    as `python -m` does, so `torchslim profile my_pkg.models:make_net` works from the project."""
    project = tmp_path / "project"
    (project / "cwd_pkg").mkdir(parents=True)
    (project / "cwd_pkg" / "__init__.py").write_text("")
    (project / "cwd_pkg" / "models.py").write_text(
        "from torch import nn\n\ndef make_net(width=3):\n    return nn.Linear(4, width)\n")
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(project))])
    try:
        code, out, err = _run(capsys, "profile", "cwd_pkg.models:make_net", "--input-shape", "1,4", "--json")
    finally:
        for name in ("cwd_pkg", "cwd_pkg.models"):
            sys.modules.pop(name, None)
    assert code == 0, err
    assert json.loads(out)["params"] == 4 * 3 + 3
