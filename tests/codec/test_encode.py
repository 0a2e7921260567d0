"""codec.encode: the file is written, reads back bit-exactly, the table adds up; the recipe runs."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import small_model
from torchslim.codec import decode_model
from torchslim.pipeline import compress
from torchslim.profiler.snapshot import MeasureConfig

NO_LATENCY = MeasureConfig(runtimes=())
PIPELINE = [
    ("prune.magnitude", {"criterion": "uniform", "sparsity": 0.92, "schedule": "oneshot", "finetune": {"epochs": 0}}),
    ("quant.kmeans", {"bits": 5, "finetune": {"epochs": 0}, "float16": True}),
]


def test_pipeline_writes_a_file_that_reads_back_bit_exactly(tmp_path):
    model, x = small_model("lenet300")
    result = compress(model, PIPELINE + [("codec.encode", {"index_bits": 5})], measure=NO_LATENCY,
                      progress=False, out_dir=tmp_path)
    details = result.report.steps[-1].details
    path = tmp_path / "model.tsc"
    assert details["path"] == str(path) and details["verified_bit_exact"]
    assert details["file_bytes"] == path.stat().st_size
    rows = details["layers"]
    assert sum(r["compressed_bytes"] for r in rows) + details["other_tensors"]["compressed_bytes"] + \
        details["header_bytes"] == details["file_bytes"]
    assert all(r["bits"] <= 5 and r["index_bits"] == 5 for r in rows if r["layout"] == "sparse_codebook")
    assert details["dense_fp32_bytes"] == 4 * 266610
    assert details["rate"] > 35  # 8% of weights at ~9 bits each plus float16 biases
    restored = decode_model(path)
    assert torch.equal(restored(x), result.model(x))
    assert (tmp_path / "model.md").read_text().count("| **total** |") == 1
    assert result.report.steps[-1].sqnr_db is None  # encoding changes nothing


@pytest.mark.parametrize("coder", ["huffman", "rans", "packed"])
def test_forced_coders_round_trip(coder, tmp_path):
    model, x = small_model("lenet5")
    result = compress(model, PIPELINE + [("codec.encode", {"coder": coder, "path": str(tmp_path / "m.tsc")})],
                      measure=NO_LATENCY, progress=False)
    layers = result.report.steps[-1].details["layers"]
    assert all(set(r["coders"].split("/")) == {coder} for r in layers if r["coders"])
    assert torch.equal(decode_model(tmp_path / "m.tsc")(x), result.model(x))


def test_without_output_directory_nothing_is_written():
    model, _ = small_model("lenet300")
    result = compress(model, ["codec.encode"], measure=NO_LATENCY, progress=False)
    assert result.report.steps[0].details["path"] is None
    assert any("not written" in w for w in result.report.steps[0].warnings)


def test_builtin_recipe_parses_and_a_small_recipe_runs(tmp_path):
    from torchslim.recipes.runner import run_recipe
    from torchslim.recipes.schema import load_recipe, parse_recipe

    builtin = load_recipe("deep_compression")
    assert [s.name for s in builtin.steps] == ["prune.magnitude", "quant.kmeans", "codec.encode"]
    recipe = parse_recipe({
        "model": "zoo:lenet300", "data": {"name": "digits", "image_size": 28}, "train": {"epochs": 1},
        "steps": [{"prune.magnitude": {"criterion": "global", "sparsity": 0.9, "finetune": {"epochs": 1}}},
                  {"quant.kmeans": {"bits": 4, "finetune": {"epochs": 1}}}, {"codec.encode": {}}],
        "measure": {"runtimes": []}})
    run_recipe(recipe, tmp_path, progress=False)
    report = json.loads((tmp_path / "report.json").read_text())
    table = report["steps"][-1]["details"]
    assert (tmp_path / "model.tsc").stat().st_size == table["file_bytes"]
    assert table["pruning_rate"] == pytest.approx(10, rel=0.01) and table["rate"] > 20
