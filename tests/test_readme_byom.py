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


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh folder as the current directory and on the import path; my_pkg forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    yield tmp_path
    for name in [m for m in sys.modules if m == "my_pkg" or m.startswith("my_pkg.")]:
        del sys.modules[name]


def test_readme_bring_your_own_model_runs(project, capsys):
    blocks = _blocks()
    assert [lang for lang, _ in blocks] == ["python", "python", "yaml", "bash"]
    for lang, code in blocks:
        header = code.splitlines()[0]
        if lang in ("python", "yaml") and re.fullmatch(r"# [\w/]+\.(py|yaml)", header):
            target = project / header[2:]
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

    python_run = json.loads((project / "runs/byom-python/report.json").read_text())
    recipe_run = json.loads((project / "runs/byom/report.json").read_text())
    for report in (python_run, recipe_run):
        fold, prune = report["steps"]
        assert (fold["technique"], prune["technique"]) == ("fold.bn", "prune.channels")
        assert fold["max_abs_error"] < 1e-4  # folding is exact
        assert prune["before"]["macs"] / prune["after"]["macs"] >= 1.4
    _raw_pixels_through_onnx_match_the_python_pipeline(project / "runs/byom-python")
    assert (project / "runs/byom/model/spec.json").is_file()
    # Without the opt-in, the saved model's user classes are named and not imported.
    from torchslim.errors import UserError
    from torchslim.serialize import load

    with pytest.raises(UserError, match="my_pkg.models"):
        load(project / "runs/byom/model")


def _raw_pixels_through_onnx_match_the_python_pipeline(folder: Path) -> None:
    """The export with preprocessing, fed raw pixels, predicts what the saved model predicts on the
    standardised inputs of the Python pipeline."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from torchslim.data import load_dataset
    from torchslim.serialize import load, read_spec

    pre = read_spec(folder / "model")["metadata"]["preprocessing"]
    x = load_dataset("digits").test.tensors[0][:64]
    mean, std = (torch.tensor(pre[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    raw = ((x * std + mean) / pre["pixel_scale"]).numpy()
    assert raw.min() >= -1e-4 and raw.max() <= 16 + 1e-4  # sklearn's digits: 0..16
    session = ort.InferenceSession(str(folder / "model_raw_input.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: raw})[0]
    with torch.no_grad():
        expected = load(folder / "model", trust_code=True)(x).numpy()
    assert np.array_equal(logits.argmax(1), expected.argmax(1))
    assert np.abs(logits - expected).max() < 1e-3
