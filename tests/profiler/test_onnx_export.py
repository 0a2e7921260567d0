"""ONNX export: numerics vs eager at two batch sizes (dynamic batch), atomic write, silence."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchslim

from torchslim.errors import UserError
from torchslim.profiler import export_onnx, onnx_provenance, onnx_session


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.body(x) + x)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _TinyViT(nn.Module):
    """Patch embedding, class token expanded to the batch, one SDPA attention block."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 4)
        self.heads = heads

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = x + self.proj(attn)
        return self.head(F.gelu(x[:, 0]))


def _convnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3))


MODELS = {
    "convnet": _convnet,
    "residual": _Residual,
    "vit_sdpa": _TinyViT,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_matches_eager_at_batch_1_and_3(name, tmp_path):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    path = export_onnx(model, torch.randn(1, 3, 8, 8), tmp_path / f"{name}.onnx")
    session = onnx_session(path, threads=1)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 8, 8)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_export_is_atomic_and_silent(tmp_path, capfd):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    model = _Residual().train()
    export_onnx(model, torch.randn(2, 3, 8, 8), target)
    assert target.read_bytes() != b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # no temp file left
    assert model.training and model.stem[1].training  # training flags restored
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_failed_export_leaves_old_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(UserError, match="1x3x5x5"):
        export_onnx(nn.Linear(4, 2), torch.randn(1, 3, 5, 5), target)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_session_from_bytes_and_fixed_threads(tmp_path):
    path = export_onnx(nn.Linear(4, 2), torch.randn(1, 4), tmp_path / "m.onnx", dynamic_batch=False)
    session = onnx_session(path.read_bytes(), threads=1)
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_inputs()[0].shape == [1, 4]  # static batch when asked


def test_import_loads_no_onnx_runtime():
    code = "import sys, torchslim.profiler; print('onnxruntime' in sys.modules, 'onnx' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_dynamo_exporter_fallback_keeps_batch_dynamic(tmp_path, monkeypatch):
    """If the TorchScript exporter fails, the torch.export-based one takes over; a batch-1
    example must not pin the batch (the ViT expands its class token to the batch)."""
    from torchslim.profiler import onnx_export

    def unavailable(*args, **kwargs):
        raise RuntimeError("TorchScript exporter unavailable")

    monkeypatch.setattr(onnx_export, "_export_torchscript", unavailable)
    torch.manual_seed(0)
    model = _TinyViT().eval()
    path = export_onnx(model, torch.randn(1, 3, 8, 8), tmp_path / "vit.onnx")
    session = onnx_session(path, threads=1)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert onnx_provenance(path) == {"exporter": "dynamo", "version": torchslim.__version__,
                                     "exporter_fallback": "RuntimeError: TorchScript exporter unavailable"}


def test_file_names_the_exporter_that_wrote_it(tmp_path):
    path = export_onnx(_convnet().eval(), torch.randn(1, 3, 8, 8), tmp_path / "m.onnx")
    assert onnx_provenance(path) == {"exporter": "torchscript", "version": torchslim.__version__}


def test_a_bug_in_the_exporter_call_is_not_hidden_by_the_fallback(tmp_path, monkeypatch):
    """Only the TorchScript exporter's RuntimeErrors fall back; a TypeError is our bug and used
    to be swallowed by ``except Exception`` (the dynamo exporter then wrote the file)."""
    from torchslim.profiler import onnx_export

    def buggy(*args, **kwargs):
        raise TypeError("export() got an unexpected keyword argument")

    monkeypatch.setattr(onnx_export, "_export_torchscript", buggy)
    with pytest.raises(TypeError, match="unexpected keyword"):
        export_onnx(_convnet().eval(), torch.randn(1, 3, 8, 8), tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_both_exporters_failing_chains_the_first_failure(tmp_path, monkeypatch):
    from torchslim.profiler import onnx_export

    def fails(name):
        def export(*args, **kwargs):
            raise RuntimeError(f"{name} failed")
        return export

    monkeypatch.setattr(onnx_export, "_export_torchscript", fails("torchscript"))
    monkeypatch.setattr(onnx_export, "_export_dynamo", fails("dynamo"))
    with pytest.raises(RuntimeError, match="dynamo failed") as info:
        export_onnx(_convnet().eval(), torch.randn(1, 3, 8, 8), tmp_path / "m.onnx")
    assert str(info.value.__cause__) == "torchscript failed"
    assert any("TorchScript exporter failed first" in note for note in info.value.__notes__)
