"""README "Bring your own model" runs as written: its files are written into a fresh folder, its
Python block is executed there, its shell lines run through the CLI in-process."""

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from torchslim.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Bring your own model\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def test_readme_bring_your_own_model_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    blocks = _blocks()
    assert [lang for lang, _ in blocks] == ["python", "python", "yaml", "bash"]
    try:
        for lang, code in blocks:
            header = code.splitlines()[0]
            if lang in ("python", "yaml") and re.fullmatch(r"# [\w/]+\.(py|yaml)", header):
                target = tmp_path / header[2:]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(code, encoding="utf-8")
                if target.suffix == ".py":
                    (target.parent / "__init__.py").touch()
            elif lang == "python":
                exec(compile(code, f"{README}:bring-your-own-model", "exec"), {"__name__": "readme"})
            else:
                for line in code.strip().splitlines():
                    argv = shlex.split(line)
                    assert argv[0] == "torchslim"
                    assert main(argv[1:]) == 0, capsys.readouterr().err
    finally:
        for name in [m for m in sys.modules if m == "my_pkg" or m.startswith("my_pkg.")]:
            del sys.modules[name]

    python_run = json.loads((tmp_path / "runs/byom-python/report.json").read_text())
    recipe_run = json.loads((tmp_path / "runs/byom/report.json").read_text())
    for report in (python_run, recipe_run):
        fold, prune = report["steps"]
        assert (fold["technique"], prune["technique"]) == ("fold.bn", "prune.channels")
        assert fold["max_abs_error"] < 1e-4  # folding is exact
        assert prune["before"]["macs"] / prune["after"]["macs"] >= 1.4
    assert (tmp_path / "runs/byom-python/model.onnx").is_file()
    assert (tmp_path / "runs/byom/model/spec.json").is_file()
    # Without the opt-in, the saved model's user classes are named and not imported.
    from torchslim.errors import UserError
    from torchslim.serialize import load

    with pytest.raises(UserError, match="my_pkg.models"):
        load(tmp_path / "runs/byom/model")
