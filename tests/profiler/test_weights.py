"""Parameter counts with tied weights, and safetensors size against the bytes it writes."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save, save_model
from torch import nn

from torchslim.profiler import count_params, profile_model, safetensors_size_bytes


class _TiedLM(nn.Module):
    """Embedding and output head share one weight (the usual language-model tie)."""

    def __init__(self, vocab: int = 50, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        return self.head(self.embed(tokens))


def test_tied_weights_counted_once():
    model = _TiedLM()
    assert count_params(model) == 50 * 8
    stats = profile_model(model, torch.randint(0, 50, (2, 3)))
    assert stats.params == 50 * 8
    # each layer shows its own direct parameters, so the tied tensor appears in both rows
    assert [layer.params for layer in stats.layers] == [400, 400]
    assert stats.macs == 2 * 3 * 8 * 50


def test_distinct_parameters_over_one_storage_counted_once():
    model = nn.Module()
    base = torch.randn(4, 4)
    model.a = nn.Parameter(base)
    model.b = nn.Parameter(base)  # a different Parameter object, same memory
    model.c = nn.Parameter(torch.randn(3))
    assert count_params(model) == 16 + 3


def _models() -> list[nn.Module]:
    mixed = nn.Module()
    dtypes = [torch.float64, torch.int64, torch.float32, torch.int32, torch.float16]
    dtypes += [torch.bfloat16, torch.int8, torch.uint8, torch.bool, torch.int16]
    for i, dtype in enumerate(dtypes):
        # names of growing length, so the header's offsets depend on the writer's order
        mixed.register_buffer(f"b{i}_{'x' * i}", torch.zeros(3 + i, dtype=dtype))
    big = nn.Sequential(nn.Conv2d(3, 64, 7), nn.BatchNorm2d(64), nn.Linear(1000, 3000))
    return [nn.Linear(3, 2), nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), mixed, big]


@pytest.mark.parametrize("model", _models(), ids=["linear", "conv_bn", "mixed_dtypes", "big"])
def test_size_bytes_equals_safetensors_bytes(model):
    assert safetensors_size_bytes(model) == len(save(model.state_dict()))


def test_size_bytes_of_tied_model_equals_save_model_file(tmp_path):
    model = _TiedLM()
    path = tmp_path / "tied.safetensors"
    save_model(model, str(path))
    assert safetensors_size_bytes(model) == path.stat().st_size
    assert profile_model(model, torch.randint(0, 50, (1, 2))).size_bytes == path.stat().st_size


def test_profile_size_bytes_equals_safetensors_bytes():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    stats = profile_model(model, torch.randn(1, 3, 8, 8))
    assert stats.size_bytes == len(save(model.state_dict()))


def test_meta_model_profiles_like_the_real_one():
    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Flatten(), nn.LazyLinear(5))

    real = build()
    real(torch.randn(1, 3, 8, 8))  # materialise the lazy layer
    with torch.device("meta"):
        meta = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Flatten(), nn.Linear(576, 5))
    a = profile_model(real, torch.randn(1, 3, 8, 8))
    b = profile_model(meta, torch.empty(1, 3, 8, 8, device="meta"))
    assert a.params == b.params and a.macs == b.macs and a.other_flops == b.other_flops
    assert a.size_bytes == b.size_bytes
    assert a.peak_activation_bytes == b.peak_activation_bytes
