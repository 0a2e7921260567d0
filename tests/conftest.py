"""Shared test fixtures: small zoo configurations that cover every topology quickly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

# Zoo models at sizes that run in milliseconds; the 224x224 ImageNet nets are built small.
SMALL_ZOO = {
    "lenet300": {},
    "lenet5": {},
    "resnet20": {},
    "resnet56": {},
    "resnet50": {"num_classes": 10},
    "vgg11": {"image_size": 32},
    "vgg16": {"image_size": 32},
    "mobilenetv2": {"image_size": 32, "width_mult": 0.5},
    "mobilenetv3": {"image_size": 32, "width_mult": 0.5, "num_classes": 10},
    "efficientnet_b0": {"image_size": 32, "width_mult": 0.5, "num_classes": 10},
    "densenet": {},
    "squeezenet": {"image_size": 32},
    "shufflenetv2": {"image_size": 32},
    "vit": {},
}

# resnet50 has no image_size kwarg: it runs at 64x64 with the same architecture.
SMALL_INPUT = {"resnet50": (3, 64, 64)}


def small_model(name: str, seed: int = 0, **kwargs: object) -> tuple[nn.Module, torch.Tensor]:
    """A zoo model in eval mode with randomised BN statistics, and a seeded input batch of 2
    (``kwargs`` override the small configuration, e.g. ``width_mult``)."""
    from torchslim.zoo import create_model

    torch.manual_seed(seed)
    model = create_model(name, **{**SMALL_ZOO[name], **kwargs}).eval()
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            c = module.num_features
            module.running_mean.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(c, generator=gen) * 0.4 + 0.8)
            module.weight.data.copy_(torch.rand(c, generator=gen) * 0.4 + 0.8)
            module.bias.data.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
    shape = SMALL_INPUT.get(name, tuple(model._torchslim_origin["input_shape"]))
    return model, torch.randn(2, *shape, generator=gen)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test: on 2 shared cores, 2 threads stall behind other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=sorted(SMALL_ZOO))
def zoo_model(request: pytest.FixtureRequest) -> tuple[str, nn.Module, torch.Tensor]:
    model, x = small_model(request.param)
    return request.param, model, x


@pytest.fixture
def tiny_data():
    """256 train / 64 val random 28x28 images labelled by a fixed linear teacher (learnable, fast),
    shaped like :class:`torchslim.data.DataSplits` (train, val, test, num_classes, input_shape)."""
    from types import SimpleNamespace

    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(320, 1, 28, 28, generator=gen)
    y = (x.flatten(1) @ torch.randn(784, 10, generator=gen)).argmax(1)
    return SimpleNamespace(train=TensorDataset(x[:256], y[:256]), val=TensorDataset(x[256:], y[256:]),
                           test=TensorDataset(x[256:], y[256:]), num_classes=10, input_shape=(1, 28, 28))
