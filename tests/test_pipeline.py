import pytest
import torch
from torch import nn

from torchslim import compress
from torchslim.errors import UserError
from torchslim.fold.bn import FoldBNConfig
from torchslim.core.numerics import output_error
from torchslim.profiler.snapshot import MeasureConfig
from tests.conftest import small_model

EAGER_ONLY = MeasureConfig(runtimes=("eager",))


def test_fold_step_report_has_exact_before_after_counts():
    model, x = small_model("resnet20")
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    convs_without_bias = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is None]
    result = compress(model, [FoldBNConfig()], example_inputs=x[:1], measure=EAGER_ONLY, progress=False)
    step = result.report.steps[0]
    # Folding drops BN's gamma and beta and gives every (bias-free) conv a bias.
    removed = sum(2 * bn.num_features for bn in bns)
    added = sum(conv.out_channels for conv in convs_without_bias)
    assert step.before.params - step.after.params == removed - added
    assert step.before.macs == step.after.macs  # BN arithmetic is not MACs; it moves out of other_flops
    assert step.after.other_flops.get("norm", 0) == 0 < step.before.other_flops["norm"]
    assert step.max_abs_error < 1e-5 and step.sqnr_db > 100
    assert step.technique == "fold.bn" and step.config == {"exclude": []}
    assert [p.runtime for p in step.after.latency] == ["eager"]
    # the caller's model is untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before_state.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in result.model.modules())
    summary = result.report.to_dict()["summary"]
    assert summary["macs_reduction"] == 1.0 and summary["params_reduction"] > 1.0


def test_steps_accept_names_tuples_and_mappings():
    model, x = small_model("lenet5")
    result = compress(model, ["fold.bn", ("fold.bn", {"exclude": ["classifier"]}), {"technique": "fold.bn"}],
                      example_inputs=x[:1], measure=MeasureConfig(runtimes=()), progress=False)
    assert [s.index for s in result.report.steps] == [1, 2, 3]
    assert result.report.steps[1].config == {"exclude": ["classifier"]}
    assert result.report.steps[0].sqnr_db is None  # nothing to fold in plain LeNet-5: identical output


def test_bad_step_is_a_user_error_before_anything_runs():
    model, x = small_model("lenet5")
    with pytest.raises(UserError, match=r"step 2 \(fold.bn\): unknown field 'bogus'"):
        compress(model, ["fold.bn", ("fold.bn", {"bogus": 1})], example_inputs=x[:1], progress=False)


def test_output_error_matches_hand_computed_sqnr():
    ref = torch.tensor([3.0, 4.0])
    out = torch.tensor([3.0, 4.5])
    max_abs, sqnr = output_error(ref, out)
    assert max_abs == 0.5
    assert sqnr == pytest.approx(10 * torch.log10(torch.tensor(25 / 0.25)).item())  # 20 dB
    assert output_error(ref, ref.clone()) == (0.0, None)


def test_public_api_names_stay_functions_after_submodule_imports():
    import importlib

    import torchslim

    importlib.import_module("torchslim.pipeline")
    importlib.import_module("torchslim.profiler")
    importlib.import_module("torchslim.serialize")
    assert callable(torchslim.compress) and callable(torchslim.profile) and callable(torchslim.save)


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_two_calls_sharing_a_checkpoint_dir_do_not_resume_each_others_steps(tmp_path):
    """Keyed on run_key only (default ""), the second model used to get the first one's result."""
    first, x = small_model("lenet5", seed=0)
    second, _ = small_model("lenet5", seed=1)
    none = MeasureConfig(runtimes=())
    compress(first, ["fold.bn"], example_inputs=x[:1], measure=none, progress=False, checkpoint_dir=tmp_path)
    shared = compress(second, ["fold.bn"], example_inputs=x[:1], measure=none, progress=False,
                      checkpoint_dir=tmp_path)
    alone = compress(second, ["fold.bn"], example_inputs=x[:1], measure=none, progress=False)
    assert _same_state(shared.model, alone.model)
    # the same model and steps again do resume: the saved step is reused, bit for bit
    again = compress(second, ["fold.bn"], example_inputs=x[:1], measure=none, progress=False,
                     checkpoint_dir=tmp_path)
    assert _same_state(again.model, alone.model)
    assert len(list(tmp_path.iterdir())) == 2


def test_resume_key_covers_weights_data_and_version(monkeypatch):
    from torchslim import pipeline
    from torchslim.core.digest import data_digest, model_digest
    from torchslim.data import load_dataset

    model, _ = small_model("lenet5")
    base = pipeline._start_key(model, None, MeasureConfig(), 0, "")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6  # a retrained checkpoint at the same path
    assert pipeline._start_key(model, None, MeasureConfig(), 0, "") != base
    digits = load_dataset("digits")
    assert data_digest(digits) == data_digest(load_dataset("digits"))
    assert data_digest(digits) != data_digest(load_dataset("digits", seed=1))
    current = pipeline._start_key(model, digits, MeasureConfig(), 0, "")
    assert pipeline._start_key(model, digits, MeasureConfig(), 1, "") != current  # seed
    assert pipeline._start_key(model, digits, MeasureConfig(batch_sizes=(2,)), 0, "") != current  # measurement
    monkeypatch.setattr(pipeline, "_version", lambda: "0.0.0-other")
    assert pipeline._start_key(model, digits, MeasureConfig(), 0, "") != current  # torchslim version
    assert len(model_digest(model)) == 64


def test_a_step_that_trains_without_data_fails_before_any_step_runs(monkeypatch):
    from torchslim.core.registry import TECHNIQUES

    ran = []
    fold = TECHNIQUES.get("fold.bn")
    monkeypatch.setitem(TECHNIQUES._entries, "fold.bn",
                        __import__("dataclasses").replace(fold, handler=lambda m, c, ctx: ran.append(1)))
    model, x = small_model("lenet5")
    with pytest.raises(UserError, match=r"steps\[2\] \(prune.channels\): finetune: training needs a 'data' section"):
        compress(model, ["fold.bn", ("prune.channels", {"finetune": {"epochs": 1}})], example_inputs=x[:1],
                 measure=MeasureConfig(runtimes=()), progress=False)
    assert ran == []
