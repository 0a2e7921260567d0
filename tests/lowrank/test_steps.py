"""The lowrank.* steps on zoo models through their public functions (``svd_(model, config, ctx)``):
MACs accounting, layer skipping, the latency guard and its pinned decisions, fine-tuning, save/load, ONNX, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import small_model
from tests.lowrank.conftest import run_step, tiny_data
from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.lowrank import SVDConfig, cp_, spatial_, svd_, tucker_
from torchslim.profiler import profile_model

FAST = {"latency_check": False}
STEPS = {"lowrank.svd": svd_, "lowrank.tucker": tucker_, "lowrank.spatial": spatial_, "lowrank.cp": cp_}


@pytest.mark.parametrize("name", ["lowrank.svd", "lowrank.tucker", "lowrank.spatial"])
def test_model_scope_macs_target_is_met_and_accounted(name):
    """target_macs is a reduction factor (before / after), as in prune.channels."""
    model, x = small_model("resnet20")
    before = profile_model(model, (x[:1],)).macs
    result = run_step(STEPS[name], model, x, rank_method="macs", target_macs=1.6, **FAST)
    d = result.details
    assert d["factorized"] and d["selected_macs_reduction"] >= 1.6
    assert d["selected_macs_reduction"] == round(d["selected_macs_before"] / d["selected_macs_after"], 4)
    # the predicted MACs are exactly what the profiler counts on the factorized model
    after = profile_model(result.model, (x[:1],)).macs
    assert before - after == d["selected_macs_before"] - d["selected_macs_after"]
    for layer_name in d["factorized"]:
        assert type(result.model.get_submodule(layer_name)) is nn.Sequential


def test_cp_per_layer_macs_target():
    model, x = small_model("resnet20")
    result = run_step(cp_, model, x, rank_method="macs", target_macs=2.0, scope="layer", n_iter_max=10,
                      include=["layer3.2"], **FAST)
    layers = result.details["layers"]
    assert set(layers) == {"layer3.2.conv1", "layer3.2.conv2"}
    assert all(2.0 * e["macs"] <= e["original_macs"] for e in layers.values())


def test_factorized_model_equals_the_original_with_reconstructed_weights():
    """Model-level oracle: swapping each factorized layer back to a conv holding the product of
    its factors gives the same outputs, so the surgery (names, order, stride, bias) is right."""
    model, x = small_model("resnet20")
    reference = copy.deepcopy(model)
    result = run_step(svd_, model, x, rank_method="fraction", rank_fraction=0.3, **FAST)
    assert result.details["factorized"]
    for name in result.details["factorized"]:
        first, second = result.model.get_submodule(name)
        conv = reference.get_submodule(name)
        product = (second.weight.flatten(1) @ first.weight.flatten(1)).reshape(conv.weight.shape)
        conv.weight.copy_(product)
    assert torch.allclose(result.model(x), reference(x), atol=1e-4)


def test_vbmf_ranks_on_trained_like_weights():
    model, x = small_model("resnet20")
    result = run_step(tucker_, model, x, rank_method="vbmf", include=["layer3"], **FAST)
    assert all(isinstance(e.get("rank", [1, 1]), list) for e in result.details["layers"].values())
    assert result.details["factorized"]


def test_grouped_convs_are_skipped_with_a_warning_naming_them():
    model, x = small_model("mobilenetv2")
    result = run_step(tucker_, model, x, rank_method="fraction", rank_fraction=0.5, **FAST)
    depthwise = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise
    for n in depthwise:
        assert any(w.startswith(f"{n}: grouped/depthwise") for w in result.warnings)
        assert n not in result.details["layers"]


def test_layers_that_do_not_save_macs_are_left_alone():
    model, x = small_model("lenet5")
    ref = model(x)
    result = run_step(svd_, model, x, rank_method="rank", rank=1000, **FAST)
    assert result.details["factorized"] == []
    assert torch.equal(result.model(x), ref)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for n in names:
        assert any(w.startswith(f"{n}: rank") and "would not save MACs" in w for w in result.warnings)


def test_leaving_layers_alone_keeps_each_module_s_own_train_flag():
    """Reading layer shapes runs the model in eval mode; a BatchNorm frozen in eval inside a
    model in training mode stays frozen (``model.train(was_training)`` used to reset it)."""
    model, x = small_model("resnet20")
    model.train()
    model.bn1.eval()
    run_step(svd_, model, x, rank_method="rank", rank=1000, **FAST)
    assert model.training and not model.bn1.training and model.layer1[0].bn1.training


def test_layers_measured_slower_are_left_alone():
    """The latency guard: demand an impossible speed-up and every layer stays as it was."""
    model, x = small_model("lenet300")
    result = run_step(svd_, model, x, rank_method="fraction", rank_fraction=0.1, min_speedup=1e6,
                      latency_threads=1)
    assert result.details["factorized"] == []
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert sorted(result.details["layers"]) == sorted(linears)
    for n in linears:
        assert any(w.startswith(f"{n}: factorized") and "measured slower" in w for w in result.warnings)
        decision = result.details["decisions"][n]
        assert decision["source"] == "measured" and decision["chosen"] is False and decision["speedup"] < 1e6


@pytest.mark.parametrize("min_speedup, pinned", [(1e-6, False), (1e6, True)])
def test_a_pinned_decision_overrides_the_latency_guard(min_speedup, pinned):
    """min_speedup 1e-6: the guard takes every layer, a pinned false keeps "3" as it was;
    1e6: the guard rejects every layer, a pinned true factorizes "3" anyway."""
    model, x = small_model("lenet300")
    reference = copy.deepcopy(model)
    result = run_step(svd_, model, x, rank_method="fraction", rank_fraction=0.1, min_speedup=min_speedup,
                      latency_threads=1, decisions={"3": pinned})
    decisions = result.details["decisions"]
    assert decisions["3"] == {"chosen": pinned, "source": "pinned", **({"rank": 10} if pinned else {})}
    for other in ("1", "5"):
        assert decisions[other]["source"] == "measured" and decisions[other]["chosen"] is not pinned
    assert sorted(result.details["factorized"]) == (["3"] if pinned else ["1", "5"])
    if not pinned:
        assert result.model.get_submodule("3") is model.get_submodule("3")
        assert torch.equal(result.model.get_submodule("3").weight, reference.get_submodule("3").weight)


def test_pinning_the_recorded_decisions_rebuilds_the_same_model_without_timing():
    """A rerun with details["decisions"] pinned (here against an opposite guard) builds the
    same model: the latency-dependent choice is reproducible on another machine."""
    fields = {"rank_method": "macs", "target_macs": 2.0, "latency_batch_size": 32, "latency_threads": 1}
    model, x = small_model("lenet300")
    first = run_step(svd_, copy.deepcopy(model), x, **fields)
    pins = {n: d["chosen"] for n, d in first.details["decisions"].items()}
    again = run_step(svd_, copy.deepcopy(model), x, min_speedup=1e6 if any(pins.values()) else 1e-6,
                     decisions=pins, **fields)
    assert all(d["source"] == "pinned" for d in again.details["decisions"].values())
    assert again.details["layers"] == first.details["layers"]
    assert first.model.state_dict().keys() == again.model.state_dict().keys()
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in first.model.state_dict().items())


def test_a_pinned_name_that_is_no_candidate_layer_is_a_user_error_with_close_matches():
    model, x = small_model("resnet20")
    message = r"field 'decisions': 'layer1.0.conv' matches no layer \(close matches: .*layer1.0.conv1"
    with pytest.raises(UserError, match=message):
        run_step(svd_, model, x, decisions={"layer1.0.conv": True}, **FAST)


def test_finetune_after_a_factorization_distills_with_kd():
    """``finetune: {epochs: 1, distill: kd}``: the result equals factorizing, then KD by hand
    from the same teacher with the same seed, and differs from plain fine-tuning."""
    from torchslim.distill.trainer import run_distillation
    from torchslim.train.config import TrainConfig

    model, x = small_model("lenet300")
    teacher, data = copy.deepcopy(model), tiny_data(x)
    fields = {"rank_method": "fraction", "rank_fraction": 0.3, **FAST}

    def ctx() -> Context:
        return Context((x,), data=data, teacher=teacher, seed=0, progress=False)

    with torch.enable_grad():
        kd = run_step(svd_, copy.deepcopy(model), x, ctx(), finetune={"epochs": 1, "distill": "kd"}, **fields)
        plain = run_step(svd_, copy.deepcopy(model), x, ctx(), finetune={"epochs": 1}, **fields)
        reference = run_step(svd_, copy.deepcopy(model), x, ctx(), **fields).model
        run_distillation(reference, teacher, data.train, TrainConfig(epochs=1, distill="kd"), seed=0)
    assert kd.details["finetune"]["distill"] == "kd" and plain.details["finetune"]["distill"] == "none"
    assert kd.details["factorized"] == ["1", "3", "5"]
    state = kd.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in reference.state_dict().items())
    assert not all(torch.equal(state[k], v) for k, v in plain.model.state_dict().items())


@pytest.mark.parametrize("name, fields", [("lowrank.svd", {"rank_method": "fraction", "rank_fraction": 0.3}),
                                          ("lowrank.tucker", {"rank_method": "fraction", "rank_fraction": 0.3}),
                                          ("lowrank.cp", {"rank_method": "rank", "rank": 6, "n_iter_max": 5}),
                                          ("lowrank.spatial", {"rank_method": "fraction", "rank_fraction": 0.2})])
def test_save_load_and_onnx_round_trip(tmp_path, name, fields):
    import torchslim
    from torchslim.profiler import export_onnx, onnx_session

    model, x = small_model("resnet20")
    model = run_step(STEPS[name], model, x, **{**FAST, **fields}).model.eval()
    assert any(type(m) is nn.Sequential and len(m) >= 2 and all(isinstance(c, nn.Conv2d) for c in m)
               for m in model.modules())
    torchslim.save(model, tmp_path / "m")
    loaded = torchslim.load(tmp_path / "m")
    assert torch.equal(loaded(x), model(x))
    session = onnx_session(export_onnx(model, (x,), tmp_path / "m.onnx"), 1)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(out, model(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("fields, message", [
    ({"rank_fraction": 2.0}, "field 'rank_fraction' must be in"),
    ({"rank_method": "x"}, "rank_method"),
    ({"layer_types": ["attn"]}, "layer_types"),
    ({"target_macs": 0.5}, "field 'target_macs' must be a reduction factor > 1"),  # the old after/before ratio
    ({"macs_ratio": 0.5}, "unknown field 'macs_ratio'"),
    ({"finetune_epochs": 1}, "unknown field 'finetune_epochs'"),
    ({"finetune": {"lrr": 0.1}}, "lowrank.svd: finetune: unknown field 'lrr'"),
    ({"decisions": {"fc": 1}}, "field 'decisions' entry 'fc' must be true or false, got 1"),
])
def test_bad_fields_are_one_line_user_errors(fields, message):
    with pytest.raises(UserError, match=message) as info:
        SVDConfig.from_dict(fields, where="lowrank.svd")
    assert "\n" not in str(info.value)


def test_finetune_without_data_is_a_user_error():
    model, x = small_model("lenet5")
    with pytest.raises(UserError, match="data"):
        run_step(svd_, model, x, rank_method="fraction", finetune={"epochs": 1}, **FAST)


RECIPE = """
model: {name: zoo:lenet5}
data: mnist5k
train: {epochs: 1}
steps:
  - lowrank.regularize: {strength: 0.5, finetune: {epochs: 1}}
  - lowrank.svd: {rank_method: energy, energy: 0.95, layer_types: [linear], latency_check: false}
  - lowrank.tucker: {rank_method: fraction, rank_fraction: 0.5, include: [features.3], latency_check: false}
  - lowrank.spatial: {rank_method: rank, rank: 2, include: [features.0], latency_check: false}
  - lowrank.cp: {rank_method: rank, rank: 4, include: [features.3.1], latency_check: false, finetune: {epochs: 1}}
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
