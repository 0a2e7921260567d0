"""``device: cpu | cuda | cuda:N | auto``: validated in one line; GPU runs skip cleanly without one."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import torchslim
from torchslim.core.device import resolve_device
from torchslim.errors import UserError
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.recipes.schema import parse_recipe
from torchslim.train import evaluate, fit

GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")
no_gpu = pytest.mark.skipif(GPU, reason="checks the error a machine without a GPU gives")
QUIET = MeasureConfig(runtimes=())


def _data(n: int = 64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, 8, generator=g)
    return TensorDataset(x, (x.mean(dim=(1, 2, 3)) > 0).long())


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 2))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if GPU else "cpu")
    for bad in ("tpu", "cuda:x", "cuda:-1", 3, None, "gpu"):
        with pytest.raises(UserError, match="device must be cpu, cuda, cuda:N or auto, got"):
            resolve_device(bad)


@no_gpu
def test_cuda_without_a_gpu_is_one_line_before_any_work():
    for text in ("cuda", "cuda:1"):
        with pytest.raises(UserError, match=f"device '{text}': no CUDA GPU is available here") as info:
            resolve_device(text)
        assert "\n" not in str(info.value)
    model = _net()
    with pytest.raises(UserError, match="no CUDA GPU"):
        torchslim.compress(model, ["fold.bn"], data={"train": _data()}, device="cuda", measure=QUIET,
                           progress=False)
    raw = {"model": "zoo:lenet5", "data": "digits", "steps": [], "device": "cuda"}
    with pytest.raises(UserError, match=r"^r\.yaml: field 'device': device 'cuda': no CUDA GPU is available"):
        parse_recipe(raw, "r.yaml")


def test_recipe_device_field():
    raw = {"model": "zoo:lenet5", "steps": []}
    assert parse_recipe(raw, "r.yaml").device is None
    assert parse_recipe({**raw, "device": "cpu"}, "r.yaml").device == "cpu"
    assert parse_recipe({**raw, "device": "auto"}, "r.yaml").device == "auto"
    with pytest.raises(UserError, match=r"^r\.yaml: field 'device': device must be cpu, cuda, cuda:N or auto, "
                                        r"got 'tpu'$"):
        parse_recipe({**raw, "device": "tpu"}, "r.yaml")


def test_compress_on_an_explicit_cpu_device_matches_the_default():
    data = {"train": _data(), "test": _data(32)}
    steps = [("finetune", {"epochs": 1})]
    a = torchslim.compress(_net(), steps, data=data, measure=QUIET, progress=False)
    b = torchslim.compress(_net(), steps, data=data, device="cpu", measure=QUIET, progress=False)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y)


@needs_gpu
def test_fit_and_evaluate_on_a_gpu_match_the_cpu():
    data = _data()
    cpu_model, gpu_model = _net(), _net().cuda()
    fit(cpu_model, data, epochs=1, batch_size=16, progress=False)
    fit(gpu_model, DataLoader(data, batch_size=16), epochs=1, progress=False)  # moved batch by batch
    assert next(gpu_model.parameters()).is_cuda
    assert 0.0 <= evaluate(gpu_model, data) <= 1.0


@needs_gpu
def test_compress_on_a_gpu_returns_the_model_on_the_callers_device():
    data = {"train": _data(), "test": _data(32)}
    steps = [("finetune", {"epochs": 1, "distill": "kd"}), ("quant.ptq", {"num_samples": 32, "export_onnx": False})]
    model = _net()
    result = torchslim.compress(model, steps, data=data, device="cuda", measure=QUIET, progress=False)
    assert all(not t.is_cuda for t in result.model.state_dict().values())
    assert all(not t.is_cuda for t in model.state_dict().values())  # the caller's model was not moved
    assert result.report.steps[-1].after.accuracy == pytest.approx(evaluate(result.model, data["test"]), abs=0.05)

