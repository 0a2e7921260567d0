"""Issue 11, "Data the way users have it": train, calibrate (quant.ptq) and evaluate through a
user-built DataLoader over a custom map-style Dataset with a transform, in ``compress()``, and in a
recipe whose image folder is streamed from disk; and a non-classification metric via ``eval_fn``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import torchslim
from torchslim.core import Context
from torchslim.data import load_dataset
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.quant import PTQConfig, ptq_
from torchslim.train import evaluate, fit
from torchslim.zoo import create_model

QUIET = MeasureConfig(runtimes=())


class Upsampled(Dataset):
    """The user's own Dataset: raw digits (8x8, 0..16) with a transform applied per item
    (scale, pad to 12x12, standardise), counting how often items are read."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.reads = x, y, 0

    def __len__(self) -> int:
        return len(self.x)

    @staticmethod
    def transform(image: torch.Tensor) -> torch.Tensor:
        return (F.pad(image / 16.0, (2, 2, 2, 2)) - 0.2) / 0.3

    def __getitem__(self, i: int):
        self.reads += 1
        return self.transform(self.x[i]), int(self.y[i])


def _user_data():
    splits = load_dataset("digits")  # standardised TensorDatasets; undo to get raw-ish pixels
    def raw(ds):
        x, y = (t[:n] for t in ds.tensors)
        return (x * splits.std[0] + splits.mean[0]) / splits.pixel_scale, y
    n = 600
    return Upsampled(*raw(splits.train)), Upsampled(*raw(splits.test))


def _materialised(ds: Upsampled) -> TensorDataset:
    return TensorDataset(torch.stack([ds.transform(x) for x in ds.x]), ds.y.clone())


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 10))


def test_compress_trains_calibrates_and_evaluates_through_a_users_dataloader():
    train_ds, test_ds = _user_data()
    data = {"train": DataLoader(train_ds, batch_size=32), "test": DataLoader(test_ds, batch_size=100)}
    steps = [("finetune", {"epochs": 2, "lr": 0.05}), ("quant.ptq", {"num_samples": 64, "export_onnx": False, "latency_check": False})]
    start = _net()
    result = torchslim.compress(start, steps, data=data, measure=QUIET, progress=False)
    assert train_ds.reads >= 2 * len(train_ds) + 64  # two epochs, then calibration, through the transform
    assert result.report.initial.accuracy < 0.3  # 10 classes: the untrained net is near chance
    assert result.report.steps[0].after.accuracy > 0.6
    # evaluation went through the test DataLoader: the same number as on an in-memory copy
    assert result.report.steps[-1].after.accuracy == pytest.approx(evaluate(result.model, _materialised(test_ds)))
    # training and calibration read the user's transformed examples through the loader: fit on an
    # in-memory copy in the same (sequential) batches, then PTQ calibrated on the first 64 of them,
    # gives the same int8 model bit for bit
    float_model = copy.deepcopy(start)
    fit(float_model, DataLoader(_materialised(train_ds), batch_size=32), epochs=2, lr=0.05, progress=False)
    first64 = TensorDataset(*[t[:64] for t in _materialised(train_ds).tensors])
    ctx = Context(first64.tensors[0][:1], data={"train": first64})
    ptq_(float_model.eval(), PTQConfig(num_samples=64, export_onnx=False, latency_check=False), ctx)
    assert ctx.results[-1].details == result.report.steps[1].details
    for (name, a), b in zip(result.model.state_dict().items(), float_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_recipe_with_an_image_folder_streamed_from_disk(tmp_path):
    from PIL import Image

    from torchslim.data import load_data
    from torchslim.recipes.runner import run_recipe
    from torchslim.recipes.schema import parse_recipe
    from torchslim.serialize import load

    rng = np.random.default_rng(0)
    for label, name in enumerate(("left", "right")):  # a bright bar on the left or the right half
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 60, size=(12, 12), dtype=np.uint8)
            cols = slice(1, 5) if label == 0 else slice(7, 11)
            pixels[:, cols] = 200 + rng.integers(0, 50, size=(12, 4), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / "imgs" / name / f"{i:02d}.png")
    raw = {"model": {"name": "zoo:lenet5", "kwargs": {"batch_norm": True}},
           "data": {"name": f"folder:{tmp_path / 'imgs'}", "image_size": 28, "num_workers": 1},
           "train": {"epochs": 3, "batch_size": 9, "lr": 0.05},  # 28 training images: last batch of 1
           "steps": [{"quant.ptq": {"num_samples": 16, "export_onnx": False}}],
           "measure": {"runtimes": []}, "device": "cpu"}
    recipe = parse_recipe(raw, "folder.yaml")
    with pytest.warns(UserWarning, match="skipping a training batch of 1 example"):
        report = run_recipe(recipe, tmp_path / "out", progress=False)
    splits = load_data(f"folder:{tmp_path / 'imgs'}", image_size=28)
    assert not hasattr(splits.test, "tensors")  # streamed: nothing decoded up front
    assert report.steps[0].before.accuracy >= 0.875  # 8 test images, bars are easy after 3 epochs
    final = load(tmp_path / "out" / "model")
    assert report.steps[0].after.accuracy == pytest.approx(evaluate(final, splits.test))


def test_a_regression_metric_through_eval_fn():
    """eval_fn may return any score (here: minus the mean squared error of a regression net)."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    target = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))

    def neg_mse(m: nn.Module) -> float:
        with torch.no_grad():
            return -float(F.mse_loss(m(x), target))

    result = torchslim.compress(model, [("prune.channels", {"ratio": 0.5})], example_inputs=x[:1],
                                data={"train": TensorDataset(x, target)}, eval_fn=neg_mse,
                                measure=QUIET, progress=False)
    step = result.report.steps[0]
    assert step.before.accuracy == pytest.approx(neg_mse(model))
    assert step.after.accuracy == pytest.approx(neg_mse(result.model))
    assert result.model[0].out_features == 8


def test_a_run_over_dataloaders_resumes_from_its_step_checkpoints(tmp_path):
    """The data digest reads a DataLoader's first example (DataLoaders cannot be indexed)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 12, 12, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    data = {"train": DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16),
            "test": DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16)}
    steps = ["fold.bn", ("prune.channels", {"ratio": 0.5})]
    first = torchslim.compress(_net(), steps, data=data, measure=QUIET, progress=False, checkpoint_dir=tmp_path)
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert len(saved) == 2
    again = torchslim.compress(_net(), steps, data=data, measure=QUIET, progress=False, checkpoint_dir=tmp_path)
    assert again.report.steps == first.report.steps  # timings included: both steps were read back
    other = {**data, "test": DataLoader(TensorDataset(-x[64:], y[64:]), batch_size=16)}
    torchslim.compress(_net(), steps[:1], data=other, measure=QUIET, progress=False, checkpoint_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3  # other data: a step of its own, nothing resumed
