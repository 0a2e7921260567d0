"""`torchslim run`: progress and notes on stderr (never in report files), --quiet, the one-line
summary, report.html, and the preprocessing recorded in report.json and both ONNX exports."""

import json
import re

import yaml

from torchslim.cli.main import main
from torchslim.profiler.onnx_export import onnx_preprocessing
from torchslim.serialize.store import read_spec

RECIPE = {
    "model": {"name": "zoo:lenet5", "kwargs": {"batch_norm": True}},
    "data": "mnist5k",
    "train": {"epochs": 1},
    "steps": ["fold.bn"],
    "measure": {"runtimes": ["onnxruntime"], "batch_sizes": [1]},
}


def test_run_logs_progress_resumes_with_notes_and_quiet_prints_one_line(tmp_path, capsys):
    recipe, out = tmp_path / "r.yaml", tmp_path / "out"
    recipe.write_text(yaml.safe_dump(RECIPE))

    assert main(["run", str(recipe), "--out", str(out)]) == 0
    first = capsys.readouterr()
    assert "\r" not in first.err
    # One line per epoch ("epoch 1/1, 3.1 s: loss ..."); a slow epoch adds "epoch 1/1 20/55, ..." lines.
    assert [line for line in first.err.splitlines() if re.match(r"epoch \d+/\d+, ", line)][0].startswith("epoch 1/1, ")
    assert len([line for line in first.err.splitlines() if re.match(r"epoch \d+/\d+, ", line)]) == 1
    assert "step 1/1: fold.bn" in first.err and "compress 1/1, " in first.err
    summary = first.out.strip().splitlines()[-1]
    assert "faster in ONNX Runtime at batch 1" in summary or "(slower) in ONNX Runtime" in summary
    assert summary.endswith("+0.0 points top-1")  # folding BN is exact

    assert main(["run", str(recipe), "--out", str(out)]) == 0
    again = capsys.readouterr().err
    assert "reusing trained model from " in again and "epoch 1/1" not in again
    assert f"step 1 resumed from {out / 'checkpoints' / 'steps'}" in again

    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out.count("\n") == 1 and quiet.out.endswith("points top-1\n")

    for name in ("report.json", "report.md", "report.html"):
        text = (out / name).read_text()
        assert not re.search(r"epoch 1/1|s left|resumed from|reusing trained", text), name
    report = json.loads((out / "report.json").read_text())
    pre = report["preprocessing"]
    assert pre["pixel_scale"] == 1 / 255 and pre["layout"] == "NCHW" and len(pre["mean"]) == 1
    assert read_spec(out / "model")["metadata"]["preprocessing"] == pre
    assert onnx_preprocessing(out / "model.onnx") == {**pre, "in_graph": False}
    assert onnx_preprocessing(out / "model_raw_input.onnx") == {**pre, "in_graph": True}
