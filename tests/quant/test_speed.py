"""Never slower than float: the latency check's trial order, fallback, pinning and whole-model
last resort, with an injected timer (deterministic: no real time is measured or asserted)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.conftest import small_model
from torchslim.core import Context
from torchslim.core.timing import Comparison
from torchslim.errors import UserError
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.quant import PTQConfig, QATConfig, QuantizedConv2d, QuantizedLinear, ptq_, qat_
from torchslim.quant.speed import trial_sets
from torchslim.train import TrainConfig

LENET = ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]


def _ctx(x: torch.Tensor, **kw) -> Context:
    gen = torch.Generator().manual_seed(0)
    data = SimpleNamespace(train=TensorDataset(torch.randn(32, *x.shape[1:], generator=gen), torch.zeros(32)),
                           val=None)
    return Context((x[:1],), data=data, progress=False, measure=MeasureConfig(batch_sizes=(1, 16)), **kw)


def _int8(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (QuantizedConv2d, QuantizedLinear))]


class FakeTimer:
    """int8 vs fp32 'speedup' as a function of which layers are int8; records every call."""

    def __init__(self, speedup, spread=0.1):
        self.speedup, self.spread, self.calls = speedup, spread, []

    def __call__(self, fp32: nn.Module, int8: nn.Module, batch: int) -> Comparison:
        assert not _int8(fp32)  # the baseline is the float model
        layers = _int8(int8)
        self.calls.append((tuple(layers), batch))
        s = self.speedup(layers, batch)
        return Comparison(1.0, 1.0 / s, s, self.spread, 5, min_ratio=s * (1 - self.spread / 2))


def test_trial_sets_float_the_ends_first_fewest_layers_first():
    names = list("abcdefgh")
    assert trial_sets(names) == [{"h"}, {"a"}, {"a", "h"}, {"a", "b", "g", "h"}]
    assert trial_sets(list("abcdefghijklmnopq")) == [{"q"}, {"a"}, {"a", "q"}, set("abpq"), set("abcdnopq"),
                                                     set("abcdefghjklmnopq")]  # all but the middle one
    assert trial_sets(["a"]) == [] and trial_sets(["a", "b"]) == [{"b"}, {"a"}]


def test_int8_slower_at_batch_1_sends_the_last_layer_to_float():
    """Slower at batch 1 while the classifier's last layer is int8: the first trial (last layer
    float) passes at both batch sizes and is kept; batch 16 of a failed trial is never timed."""
    model, x = small_model("lenet5")
    timer = FakeTimer(lambda layers, b: 0.8 if "classifier.4" in layers and b == 1 else 1.3)
    result = ptq_.handler(model, PTQConfig(num_samples=32, export_onnx=False), _ctx(x), measure=timer)
    assert timer.calls == [(tuple(LENET), 1), (tuple(LENET[:4]), 1), (tuple(LENET[:4]), 16)]
    assert _int8(model) == LENET[:4] and type(model.classifier[4]) is nn.Linear
    d = result.details
    assert d["quantized_layers"] == 4 and list(d["float_for_speed"]) == ["classifier.4"]
    assert "batch 1: 1.25 ms vs 1 ms, 0.80x" in d["float_for_speed"]["classifier.4"]
    trials = d["speed_check"]["trials"]
    assert [t["float_layers"] for t in trials] == [[], ["classifier.4"]] and [t["chosen"] for t in trials] == [False, True]
    assert d["speed_check"]["batch_sizes"] == [1, 16]  # the run's MeasureConfig


def test_whole_model_stays_float_when_no_set_is_fast_enough():
    model, x = small_model("lenet5")
    timer = FakeTimer(lambda layers, b: 0.5)
    result = ptq_.handler(model, PTQConfig(num_samples=32), _ctx(x), measure=timer)
    assert _int8(model) == [] and result.details["quantized_layers"] == 0
    # every trial: no float layer, the last, the first, both (5 layers: k=2 would leave 1 int8 ... tried too)
    assert [len(layers) for layers, _ in timer.calls] == [5, 4, 4, 3, 1]
    assert any(w.startswith("int8 slower than fp32 in ONNX Runtime (batch 1:") and "whole model stays float" in w
               for w in result.warnings), result.warnings
    assert result.details["ort_integer_ops"] == 0  # the exported model really is float


def test_pinned_decisions_are_honoured_without_timing():
    model, x = small_model("lenet5")

    def never(*args):
        raise AssertionError("every layer is pinned: nothing is timed")

    pins = {"features.0": False, **dict.fromkeys(LENET[1:], True)}
    result = ptq_.handler(model, PTQConfig(num_samples=32, decisions=pins, export_onnx=False), _ctx(x), measure=never)
    assert _int8(model) == LENET[1:] and type(model.features[0]) is nn.Conv2d
    assert result.details["float_for_speed"] == {"features.0": "pinned false in 'decisions'"}
    # a partial pin: the free layers are checked, the pinned ones never move
    model, x = small_model("lenet5")
    timer = FakeTimer(lambda layers, b: 1.0 if "classifier.2" not in layers else 0.9)
    ptq_.handler(model, PTQConfig(num_samples=32, decisions={"classifier.4": True}, export_onnx=False), _ctx(x),
                 measure=timer)
    assert all("classifier.4" in layers for layers, _ in timer.calls)
    assert _int8(model) == [*LENET[:3], "classifier.4"]  # the last unpinned layer went float
    # the last resort spares pinned layers too
    model, x = small_model("lenet5")
    result = ptq_.handler(model, PTQConfig(num_samples=32, decisions={"features.3": True}, export_onnx=False),
                          _ctx(x), measure=FakeTimer(lambda *a: 0.5))
    assert _int8(model) == ["features.3"] and "every unpinned layer stays float" in result.warnings[-1]


def test_unknown_pinned_layer_is_a_user_error_with_close_matches():
    model, x = small_model("lenet5")
    with pytest.raises(UserError, match="classifer.4.*classifier.4"):
        ptq_.handler(model, PTQConfig(num_samples=32, decisions={"classifer.4": True}), _ctx(x),
                     measure=FakeTimer(lambda *a: 2.0))


def test_qat_checks_speed_after_training_and_restores_float_layers_with_trained_weights():
    model, x = small_model("lenet5")
    ctx = _ctx(x)
    ptq_(model, PTQConfig(num_samples=32, latency_check=False, export_onnx=False), ctx)
    ctx.data.train = TensorDataset(ctx.data.train.tensors[0], torch.randint(0, 10, (32,)))
    timer = FakeTimer(lambda layers, b: 0.9 if "features.0" in layers else 1.1)
    config = QATConfig(finetune=TrainConfig(epochs=1, batch_size=16, lr=0.005, weight_decay=0.0))
    result = qat_.handler(model, config, ctx, measure=timer)
    assert _int8(model) == LENET[1:]
    first = model.features[0]  # the conv with its fused ReLU, back in float
    assert isinstance(first, nn.Sequential) and type(first[0]) is nn.Conv2d and type(first[1]) is nn.ReLU
    assert list(result.details["float_for_speed"]) == ["features.0"]
    assert result.details["ort_ops"]["QLinearConv"] == 1 and result.details["ort_ops"].get("Conv", 0) + \
        result.details["ort_ops"].get("FusedConv", 0) == 1


def test_pins_apply_without_the_latency_check():
    model, x = small_model("lenet5")
    ptq_.handler(model, PTQConfig(num_samples=32, latency_check=False, decisions={"classifier.4": False},
                                  export_onnx=False), _ctx(x), measure=FakeTimer(lambda *a: 2.0))
    assert _int8(model) == LENET[:4]


def test_an_unreliable_timing_is_measured_again_and_the_lower_median_counts():
    """Spread 0.9 (> core/timing's 0.5): each timing is repeated; both medians 1.2x: int8 is kept
    (the worst round alone, 0.66x, would have sent layers to float on any loaded machine)."""
    model, x = small_model("lenet5")
    timer = FakeTimer(lambda layers, b: 1.2, spread=0.9)
    result = ptq_.handler(model, PTQConfig(num_samples=32, export_onnx=False), _ctx(x), measure=timer)
    assert _int8(model) == LENET and [b for _, b in timer.calls] == [1, 1, 16, 16]
    assert result.details["speed_check"]["trials"][0]["batches"]["1"]["repeat"]["speedup"] == 1.2
    assert sum("timing unreliable" in w for w in result.warnings) == 2
    model, x = small_model("lenet5")
    medians = iter([1.2, 0.9] * 20)
    slower = FakeTimer(lambda layers, b: next(medians), spread=0.9)
    ptq_.handler(model, PTQConfig(num_samples=32, export_onnx=False), _ctx(x), measure=slower)
    assert _int8(model) != LENET  # one of the two medians says slower: the lower one counts
