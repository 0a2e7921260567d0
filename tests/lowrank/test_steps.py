"""The lowrank.* steps on zoo models: MACs accounting, layer skipping, save/load, ONNX, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import small_model
from torchslim.core import Context, techniques
from torchslim.errors import UserError
from torchslim.profiler import profile_model

FAST = {"latency_check": False}


def run_step(name: str, model: nn.Module, x: torch.Tensor, **fields):
    technique = techniques().get(name)
    config = technique.config_cls.from_dict(fields)
    return technique.handler(model, config, Context((x,), seed=0))


@pytest.mark.parametrize("name", ["lowrank.svd", "lowrank.tucker", "lowrank.spatial"])
def test_model_scope_macs_target_is_met_and_accounted(name):
    model, x = small_model("resnet20")
    before = profile_model(model, (x[:1],)).macs
    result = run_step(name, model, x, rank_method="macs", macs_ratio=0.6, **FAST)
    d = result.details
    assert d["factorized"] and d["selected_macs_ratio"] <= 0.6
    # the predicted MACs are exactly what the profiler counts on the factorized model
    after = profile_model(result.model, (x[:1],)).macs
    assert before - after == d["selected_macs_before"] - d["selected_macs_after"]
    for layer_name in d["factorized"]:
        assert type(result.model.get_submodule(layer_name)) is nn.Sequential


def test_cp_per_layer_macs_target():
    model, x = small_model("resnet20")
    result = run_step("lowrank.cp", model, x, rank_method="macs", macs_ratio=0.5, n_iter_max=10,
                      include=["layer3.2"], **FAST)
    layers = result.details["layers"]
    assert set(layers) == {"layer3.2.conv1", "layer3.2.conv2"}
    assert all(e["macs"] <= 0.5 * e["original_macs"] for e in layers.values())


def test_factorized_model_equals_the_original_with_reconstructed_weights():
    """Model-level oracle: swapping each factorized layer back to a conv holding the product of
    its factors gives the same outputs, so the surgery (names, order, stride, bias) is right."""
    import copy

    model, x = small_model("resnet20")
    reference = copy.deepcopy(model)
    result = run_step("lowrank.svd", model, x, rank_method="ratio", rank_ratio=0.3, **FAST)
    assert result.details["factorized"]
    for name in result.details["factorized"]:
        first, second = result.model.get_submodule(name)
        conv = reference.get_submodule(name)
        product = (second.weight.flatten(1) @ first.weight.flatten(1)).reshape(conv.weight.shape)
        conv.weight.copy_(product)
    assert torch.allclose(result.model(x), reference(x), atol=1e-4)


def test_vbmf_ranks_on_trained_like_weights():
    model, x = small_model("resnet20")
    result = run_step("lowrank.tucker", model, x, rank_method="vbmf", include=["layer3"], **FAST)
    assert all(isinstance(e.get("rank", [1, 1]), list) for e in result.details["layers"].values())
    assert result.details["factorized"]


def test_grouped_convs_are_skipped_with_a_warning_naming_them():
    model, x = small_model("mobilenetv2")
    result = run_step("lowrank.tucker", model, x, rank_method="ratio", rank_ratio=0.5, **FAST)
    depthwise = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise
    for n in depthwise:
        assert any(w.startswith(f"{n}: grouped/depthwise") for w in result.warnings)
        assert n not in result.details["layers"]


def test_layers_that_do_not_save_macs_are_left_alone():
    model, x = small_model("lenet5")
    ref = model(x)
    result = run_step("lowrank.svd", model, x, rank_method="rank", rank=1000, **FAST)
    assert result.details["factorized"] == []
    assert torch.equal(result.model(x), ref)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for n in names:
        assert any(w.startswith(f"{n}: rank") and "would not save MACs" in w for w in result.warnings)


def test_layers_measured_slower_are_left_alone():
    """The latency guard: demand an impossible speed-up and every layer stays as it was."""
    model, x = small_model("lenet300")
    result = run_step("lowrank.svd", model, x, rank_method="ratio", rank_ratio=0.1, min_speedup=1e6,
                      latency_threads=1)
    assert result.details["factorized"] == []
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert sorted(result.details["layers"]) == sorted(linears)
    for n in linears:
        assert any(w.startswith(f"{n}: factorized") and "measured slower" in w for w in result.warnings)


@pytest.mark.parametrize("name, fields", [("lowrank.svd", {"rank_method": "ratio", "rank_ratio": 0.3}),
                                          ("lowrank.tucker", {"rank_method": "ratio", "rank_ratio": 0.3}),
                                          ("lowrank.cp", {"rank_method": "rank", "rank": 6, "n_iter_max": 5}),
                                          ("lowrank.spatial", {"rank_method": "ratio", "rank_ratio": 0.2})])
def test_save_load_and_onnx_round_trip(tmp_path, name, fields):
    import torchslim
    from torchslim.profiler import export_onnx, onnx_session

    model, x = small_model("resnet20")
    model = run_step(name, model, x, **{**FAST, **fields}).model.eval()
    assert any(type(m) is nn.Sequential and len(m) >= 2 and all(isinstance(c, nn.Conv2d) for c in m)
               for m in model.modules())
    torchslim.save(model, tmp_path / "m")
    loaded = torchslim.load(tmp_path / "m")
    assert torch.equal(loaded(x), model(x))
    session = onnx_session(export_onnx(model, (x,), tmp_path / "m.onnx"), 1)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(out, model(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("fields, message", [({"rank_ratio": 2.0}, "rank_ratio"), ({"rank_method": "x"}, "rank_method"),
                                             ({"layer_types": ["attn"]}, "layer_types")])
def test_bad_fields_are_one_line_user_errors(fields, message):
    with pytest.raises(UserError, match=message):
        techniques().get("lowrank.svd").config_cls.from_dict(fields)


def test_finetune_without_data_is_a_user_error():
    model, x = small_model("lenet5")
    with pytest.raises(UserError, match="data"):
        run_step("lowrank.svd", model, x, rank_method="ratio", finetune_epochs=1, **FAST)


RECIPE = """
model: {name: zoo:lenet5}
data: mnist5k
train: {epochs: 1}
steps:
  - lowrank.regularize: {epochs: 1, strength: 0.5}
  - lowrank.svd: {rank_method: energy, energy: 0.95, layer_types: [linear], latency_check: false}
  - lowrank.tucker: {rank_method: ratio, rank_ratio: 0.5, include: [features.3], latency_check: false}
  - lowrank.spatial: {rank_method: rank, rank: 2, include: [features.0], latency_check: false}
  - lowrank.cp: {rank_method: rank, rank: 4, include: [features.3.1], latency_check: false, finetune_epochs: 1}
measure: {runtimes: []}
"""


def test_every_step_runs_from_the_cli(tmp_path, capsys):
    from torchslim.cli.main import main

    path = tmp_path / "lowrank.yaml"
    path.write_text(RECIPE)
    with torch.enable_grad():  # the autouse fixture turns grad off for the reference checks
        assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    steps = {s["technique"]: s for s in report["steps"]}
    assert list(steps) == ["lowrank.regularize", "lowrank.svd", "lowrank.tucker", "lowrank.spatial", "lowrank.cp"]
    reg = steps["lowrank.regularize"]["details"]
    assert reg["mean_rank_fraction_after"] < reg["mean_rank_fraction_before"]
    assert steps["lowrank.svd"]["details"]["factorized"]
    assert steps["lowrank.tucker"]["details"]["factorized"] == ["features.3"]
    assert steps["lowrank.cp"]["details"]["factorized"] == ["features.3.1"]
    assert steps["lowrank.cp"]["after"]["accuracy"] > 0.8
    assert steps["lowrank.cp"]["after"]["macs"] < report["initial"]["macs"]


@pytest.mark.parametrize("mode", ["proximal", "penalty"])
def test_regularizer_lowers_the_nuclear_norm_against_plain_training(mode):
    """Same seed, data and schedule: strength > 0 ends with a smaller sum of nuclear norms than 0."""
    from types import SimpleNamespace

    from torch.utils.data import TensorDataset

    from torchslim.lowrank.regularize import nuclear_norm, regularized_layers

    g = torch.Generator().manual_seed(0)
    data = SimpleNamespace(train=TensorDataset(torch.randn(128, 1, 28, 28, generator=g),
                                               torch.randint(0, 10, (128,), generator=g)))
    norms, details = {}, {}
    for strength in (0.0, 0.5):
        model, x = small_model("lenet300")
        technique = techniques().get("lowrank.regularize")
        config = technique.config_cls.from_dict({"strength": strength, "mode": mode, "epochs": 2, "lr": 0.05})
        with torch.enable_grad():
            result = technique.handler(model, config, Context((x,), data=data, seed=0, progress=False))
        norms[strength] = float(nuclear_norm([m.weight for _, m in regularized_layers(model, config)]))
        details[strength] = result.details
    assert norms[0.5] < 0.9 * norms[0.0]
    assert set(details[0.5]["layers"]) == {"1", "3", "5"}
    assert details[0.5]["regularizer_seconds"] > 0 and 0 < details[0.5]["regularizer_time_fraction"] < 1


def test_regularize_without_data_is_a_user_error():
    model, x = small_model("lenet300")
    technique = techniques().get("lowrank.regularize")
    with pytest.raises(UserError, match="data"):
        technique.handler(model, technique.config_cls.from_dict({}), Context((x,)))
