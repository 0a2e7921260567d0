import json

import pytest
import torch
from torch import nn

from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.fold.bn import FoldBNConfig, fold_bn_
from torchslim.serialize import load, save
from torchslim.serialize.verify import file_sha256
from torchslim.zoo import create_model
from tests.serialize.helpers import assert_same, edit_spec, module_entry


def test_round_trip_is_exact_for_every_zoo_model(zoo_model, tmp_path):
    _, model, x = zoo_model
    save(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.safetensors", "spec.json"]
    assert_same(model, load(tmp_path / "m"), x)


def test_round_trip_after_bn_folding(zoo_model, tmp_path):
    _, model, x = zoo_model
    fold_bn_(model, FoldBNConfig(), Context((x,)))
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in loaded.modules()) == sum(
        isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert_same(model, loaded, x)


def test_round_trip_after_surgery(tmp_path):
    """What later techniques produce: fewer channels, a layer replaced by a chain, a removed bias."""
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    f = model.features
    f[0] = nn.Conv2d(1, 4, 5, padding=2)
    f[3] = nn.Sequential(nn.Conv2d(4, 3, (5, 1), bias=False), nn.Conv2d(3, 16, (1, 5)))
    model.classifier[0] = nn.Linear(400, 60, bias=False)
    model.classifier[2] = nn.Linear(60, 84)
    x = torch.randn(3, 1, 28, 28)
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.classifier[0].bias is None
    assert isinstance(loaded.features[3], nn.Sequential)
    assert_same(model, loaded, x)


def test_tied_weights_stay_tied(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    a, b = model.layer1[0].conv2, model.layer1[1].conv1
    b.weight = a.weight
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.layer1[1].conv1.weight is loaded.layer1[0].conv2.weight
    assert_same(model, loaded, torch.randn(2, 3, 32, 32))


def test_save_replaces_existing_directory_atomically(tmp_path, monkeypatch):
    torch.manual_seed(0)
    first = create_model("lenet300").eval()
    save(first, tmp_path / "m")
    second = create_model("lenet300").eval()

    import safetensors.torch

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_model", broken)
    with pytest.raises(OSError):
        save(second, tmp_path / "m")
    monkeypatch.undo()
    # the old save is intact and no temporary directory is left behind
    assert_same(first, load(tmp_path / "m"), torch.randn(1, 1, 28, 28))
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_model_of_standard_layers_without_origin_loads_without_trust_code(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert not hasattr(loaded, "_torchslim_origin")
    assert_same(model, loaded, torch.randn(2, 1, 8, 8))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: (d / "spec.json").unlink(), "no spec.json"),
        (lambda d: (d / "spec.json").write_text("{not json"), "unreadable spec"),
        (lambda d: _edit(d, format="other"), "not a torchslim model spec"),
        (lambda d: _edit(d, schema_version=99), "schema_version 99"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 10), "bytes do not match the sha256 digest"),
        (lambda d: _replace_weights(d, b"\x00" * 10), "weights do not match"),
        (lambda d: _edit_module(d, "features.0", "os.system"), "not on torchslim's allow-list"),
    ],
)
def test_bad_files_give_one_line_user_errors(tmp_path, mutate, message):
    save(create_model("lenet5"), tmp_path / "m")
    mutate(tmp_path / "m")
    with pytest.raises(UserError, match=message) as info:
        load(tmp_path / "m")
    assert "\n" not in str(info.value)


def _edit(folder, **fields):
    edit_spec(folder, lambda spec: spec.update(fields))


def _replace_weights(folder, data):
    (folder / "model.safetensors").write_bytes(data)
    edit_spec(folder, lambda spec: spec["digest"].update(weights=file_sha256(folder / "model.safetensors")))


def _edit_module(folder, name, cls):
    edit_spec(folder, lambda spec: module_entry(spec, name).update({"class": cls}))


def test_technique_module_classes_load_in_a_fresh_process(tmp_path):
    """A quantized model's classes are allowed without the caller importing torchslim.quant."""
    import subprocess
    import sys

    from torchslim.pipeline import compress
    from torchslim.profiler.snapshot import MeasureConfig
    from tests.conftest import small_model

    model, x = small_model("lenet5")
    calib = torch.utils.data.TensorDataset(torch.randn(64, 1, 28, 28), torch.zeros(64, dtype=torch.long))
    data = type("D", (), {"train": calib, "val": calib, "test": calib})()
    result = compress(model, [("quant.ptq", {"num_samples": 64, "export_onnx": False})], example_inputs=x[:1],
                      data=data, eval_fn=lambda m: 0.0, measure=MeasureConfig(runtimes=()), progress=False)
    save(result.model, tmp_path / "q")
    expected = result.model(x)
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys, torch, torchslim; m = torchslim.load(sys.argv[1]); "
            "x = torch.load(sys.argv[2], weights_only=True); torch.save(m(x).detach(), sys.argv[3])")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "q"), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True, capture_output=True)
    assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), expected.detach())


def test_save_refuses_to_replace_a_directory_that_is_not_a_saved_model(tmp_path):
    user_dir = tmp_path / "userdir"
    (user_dir / "sub").mkdir(parents=True)
    (user_dir / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match="is not a saved torchslim model"):
        save(create_model("lenet5"), user_dir)
    assert (user_dir / "notes.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    save(create_model("lenet5"), empty)
    assert (empty / "spec.json").is_file()
    assert (empty / "model.safetensors").stat().st_mode & 0o044 == 0o044  # readable by others (umask 022)
