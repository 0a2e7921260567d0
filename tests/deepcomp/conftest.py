from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset


@pytest.fixture
def tiny_data() -> SimpleNamespace:
    """256 random 28x28 images with labels from a fixed linear teacher (learnable, fast)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(320, 1, 28, 28, generator=gen)
    y = (x.flatten(1) @ torch.randn(784, 10, generator=gen)).argmax(1)
    return SimpleNamespace(train=TensorDataset(x[:256], y[:256]), val=TensorDataset(x[256:], y[256:]),
                           test=TensorDataset(x[256:], y[256:]), num_classes=10, input_shape=(1, 28, 28))
