"""Every registered technique on every zoo model, at test size: the test that covers every
future technique without anyone writing a line.

Per (technique, model): ``compress`` runs the technique's default config (nested training cut
to one short epoch on a tiny split), the step report is filled and JSON-serialisable,
``save``/``load`` round-trips exactly (same tensors, same outputs bit for bit), and the ONNX
export loads in ONNX Runtime and agrees with PyTorch (SQNR floor: the export is float32
arithmetic in another order, so only rounding differs; 40 dB catches a wrong graph; simulated
int8 gets its own floor, see SQNR_FLOOR_DB).

A technique that does not apply to a model (no layer of its kind) must say so in a step
warning, never fail. Overrides below only shrink the work (grids, sample counts); each says why.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from tests.conftest import SMALL_ZOO, small_model

# Only to keep the suite fast; never to dodge a failure.
FAST: dict[str, dict] = {
    # the int8-vs-fp32 latency check times ORT sessions; its logic is tested with a fake timer (tests/quant)
    "quant.ptq": {"num_samples": 16, "calibration_batch_size": 16, "latency_check": False},
    "quant.qat": {"latency_check": False},
    "quant.clipq": {"calibration_samples": 16, "clip_rates": [0.9], "bits": [3]},  # scoring: layers x grid forwards
    "quant.kmeans": {"iterations": 5},
    "prune.sensitivity": {"ratios": [0.5]},
    "prune.iterative": {"steps": 2},
    # CP-ALS on 512-channel convs costs minutes; a fixed small rank and 2 sweeps test the same path.
    "lowrank.cp": {"rank_method": "rank", "rank": 4, "n_iter_max": 2},
}
# Simulated int8 (fake-quant modules in eager) against ONNX Runtime's integer kernels: ORT
# requantizes in integer arithmetic, eager rounds in float, and on these deep, narrow, random
# nets fed noise the per-layer rounding differences compound (ResNet-50 at width 0.25: 3.9 dB,
# MobileNetV2 / ShuffleNetV2 ~14 dB). Here the floor only says the ORT graph computes the same
# function (closer to eager than to zero); the int8 numerics are bounded properly in tests/quant
# on the real zoo models (<= 4 output steps, SQNR floors per model).
SQNR_FLOOR_DB = {"quant.ptq": 0.0, "quant.qat": 0.0}
# The ImageNet-size nets at a quarter of their width (the same topology: every stage, block and
# layer kind) and ResNet-50 at 32x32: 1-1.5 M parameters instead of 9-25 M. The SE nets' cost is
# per layer (capture, ONNX export, per-layer quantizers), so they are also made shallower:
# EfficientNet-B0 at half depth (10 MBConv blocks: every stage, residual SE blocks in three) and
# MobileNetV3 as its Small variant (11 blocks: ReLU and hardswish, with and without SE). Full
# depth and MobileNetV3-Large run in the graph, oracle, fold and save tests (tests/conftest.py).
NARROW = {"resnet50": {"width_mult": 0.25}, "vgg11": {"width_mult": 0.25}, "vgg16": {"width_mult": 0.25},
          "efficientnet_b0": {"width_mult": 0.25, "depth_mult": 0.5},
          "mobilenetv3": {"width_mult": 0.25, "variant": "small"}}
INPUT = {"resnet50": (3, 32, 32)}


def _techniques() -> list[str]:
    from torchslim.core.registry import techniques

    return techniques().names()


def _tiny_data(input_shape: tuple[int, ...], num_classes: int = 10):
    from torchslim.data.splits import DataSplits

    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorDataset:
        return TensorDataset(torch.randn(n, *input_shape, generator=gen),
                             torch.arange(n) % num_classes)

    c = input_shape[0]
    return DataSplits("tiny", split(32), split(16), split(16), num_classes, tuple(input_shape),
                      tuple(str(i) for i in range(num_classes)), (0.0,) * c, (1.0,) * c, 1.0)


def _test_size(config):
    """The config with every nested training cut to one epoch of two batches."""
    from torchslim.train import TrainConfig

    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, TrainConfig):
            changes[f.name] = dataclasses.replace(value, epochs=min(value.epochs, 1), batch_size=16, hint_epochs=1)
    if isinstance(config, TrainConfig):
        changes.update(epochs=1, batch_size=16, hint_epochs=1)
    return dataclasses.replace(config, **changes)


def _match_batchnorm_to_data(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Running statistics of every BatchNorm from ``x``, as a trained model's would be: with
    random statistics a 56-layer net's eval-mode logits reach ~500 and a step that folds BN
    and then trains (INQ) overflows, which no trained model does."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    for m in norms:
        m.momentum = 0.1


def _sqnr(reference: np.ndarray, output: np.ndarray) -> float:
    noise = float(((reference - output) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((reference ** 2).sum()) / noise)


@pytest.mark.parametrize("zoo", sorted(SMALL_ZOO))
@pytest.mark.parametrize("technique", _techniques())
def test_technique_on_zoo_model(technique, zoo, tmp_path):
    from torchslim import compress, load, save
    from torchslim.core.registry import config_for
    from torchslim.profiler import export_onnx
    from torchslim.profiler.onnx_export import onnx_session
    from torchslim.profiler.snapshot import MeasureConfig

    model, _ = small_model(zoo, **NARROW.get(zoo, {}))
    shape = INPUT.get(zoo, tuple(model._torchslim_origin["input_shape"]))
    data = _tiny_data(shape)
    x = data.test.tensors[0][:2]
    _match_batchnorm_to_data(model, data.train.tensors[0])
    config = _test_size(config_for(technique, FAST.get(technique, {})))
    result = compress(model, [config], example_inputs=x[:1], data=data, measure=MeasureConfig(runtimes=()),
                      progress=False, out_dir=tmp_path / "out")

    (step,) = result.report.steps
    assert step.technique == technique and step.config == config.to_dict()
    assert step.before.params > 0 and step.after.params > 0 and step.after.macs > 0
    assert step.after.accuracy is not None and 0.0 <= step.after.accuracy <= 1.0
    assert math.isfinite(step.max_abs_error)
    json.dumps(result.report.to_dict())  # canonical JSON: everything serialisable

    final = result.model.eval()
    with torch.no_grad():
        expected = final(x)
    save(final, tmp_path / "model")
    again = load(tmp_path / "model").eval()
    a, b = final.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(again(x), expected)

    path = export_onnx(final, x[:1], tmp_path / "model.onnx")
    session = onnx_session(path, threads=1)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})[:1]
    assert got.shape == tuple(expected.shape)
    assert _sqnr(expected.numpy(), got) > SQNR_FLOOR_DB.get(technique, 40.0)
