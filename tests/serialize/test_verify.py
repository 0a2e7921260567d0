"""Saved models are verified: digests over both files, and spec attributes checked before use."""

import json

import pytest
import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.serialize import load, read_spec, save
from torchslim.zoo import create_model
from tests.serialize.helpers import assert_same, edit_spec, module_entry


@pytest.fixture
def lenet(tmp_path):
    torch.manual_seed(0)
    model = create_model("lenet5", batch_norm=True).eval()
    save(model, tmp_path / "m")
    return model, tmp_path / "m"


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])  # the safetensors header, a middle tensor, the last one
def test_one_flipped_weight_bit_is_refused(lenet, where):
    _, folder = lenet
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[min(int(where * len(data)), len(data) - 1)] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="model.safetensors: bytes do not match the sha256 digest in spec.json"):
        load(folder)


def test_an_edited_spec_is_refused(lenet):
    _, folder = lenet
    spec = json.loads((folder / "spec.json").read_text())
    module_entry(spec, "features.0")["attrs"]["stride"] = [2, 2]
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    with pytest.raises(UserError, match="spec.json: content does not match its sha256 digest"):
        read_spec(folder)
    with pytest.raises(UserError, match="content does not match its sha256 digest"):
        load(folder)


def test_reformatting_the_spec_keeps_its_digest(lenet):
    model, folder = lenet
    spec = json.loads((folder / "spec.json").read_text())
    (folder / "spec.json").write_text(json.dumps(dict(reversed(spec.items()))))
    assert torch.equal(load(folder)(torch.ones(1, 1, 28, 28)), model(torch.ones(1, 1, 28, 28)))


def test_schema_1_directories_still_load(lenet):
    """What the previous torchslim wrote: no digest, tensor kinds, metadata or torchslim_version."""
    model, folder = lenet
    spec = json.loads((folder / "spec.json").read_text())
    for key in ("digest", "metadata", "torchslim_version"):
        del spec[key]
    for entry in spec["tensors"].values():
        del entry["kind"]
    spec["schema_version"] = 1
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    assert read_spec(folder)["metadata"] == {}
    assert_same(model, load(folder), torch.randn(2, 1, 28, 28))


def _set_attr(name, key, value):
    return lambda spec: module_entry(spec, name)["attrs"].__setitem__(key, value)


@pytest.mark.parametrize("change, message", [
    (_set_attr("features.0", "__class__", "x"), "module 'features.0': attribute '__class__' is not an attribute of Conv2d"),
    (_set_attr("features.0", "forward", 1), "module 'features.0': attribute 'forward' is not an attribute of Conv2d"),
    (_set_attr("features.0", "_reversed_padding_repeated_twice", [9]), "attribute '_reversed_padding_repeated_twice' is not"),
    (_set_attr("features.0", "out_channels", "6"), "module 'features.0': attribute 'out_channels' = '6' has the wrong type"),
    (_set_attr("features.0", "padding", {"a": 1}), "module 'features.0': attribute 'padding' = {'a': 1} has the wrong type"),
    (_set_attr("", "__dict__", {}), "module '': attribute '__dict__' may not be set from a spec"),
    (_set_attr("", "forward", 0), "module '': attribute 'forward' would replace LeNet5.forward"),
    (_set_attr("", "training", True), "module '': attribute 'training' may not be set from a spec"),
    (_set_attr("", "features", 1), "module '': attribute 'features' collides with a submodule"),
    (_set_attr("features.0", "out_channels", 7), "module 'features.0': out_channels 7 contradicts weight shape [6, 1, 5, 5]"),
    (_set_attr("features.0", "in_channels", 3), "module 'features.0': in_channels 3 contradicts weight shape [6, 1, 5, 5]"),
    (_set_attr("features.1", "num_features", 5), "module 'features.1': num_features 5 contradicts running_mean shape [6]"),
    (_set_attr("classifier.0", "in_features", 401), "module 'classifier.0': in_features 401 contradicts weight shape"),
    (lambda s: module_entry(s, "features.0").update(name="features.__class__"),
     "module name 'features.__class__' is not a dotted path of attribute names"),
    (lambda s: s["tensors"]["features.0.weight"].update(dtype="__class__"),
     "tensor 'features.0.weight': dtype '__class__' is not a torch dtype"),
    (lambda s: s["tensors"]["features.0.weight"].update(dtype="nn"), "dtype 'nn' is not a torch dtype"),
    (lambda s: s["tensors"]["features.0.weight"].update(shape=[6, -1]), "shape [6, -1] is not a list of sizes"),
    (lambda s: module_entry(s, "features.0").update({"class": "torch.nn.modules.rnn.LSTM"}),
     "class torch.nn.modules.rnn.LSTM is not on torchslim's allow-list"),
    (lambda s: module_entry(s, "features.0").update({"class": "torchslim.serialize.spec.nn.LSTM"}),
     "class torchslim.serialize.spec.nn.LSTM is torch.nn.modules.rnn.LSTM; a spec names classes by their own path"),
    (lambda s: module_entry(s, "features.0").update({"class": "tests.serialize.user_models:Net"}),
     "tests.serialize.user_models:Net.*trust_code=True"),
])
def test_spec_attributes_are_validated(lenet, change, message):
    _, folder = lenet
    edit_spec(folder, change)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        load(folder)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key, value, message", [
    ("out_channels", "4", "module '0': attribute 'out_channels' = '4' is not int (Conv2d)"),
    ("out_channels", True, "attribute 'out_channels' = True is not int"),
    ("kernel_size", [3, "3"], "attribute 'kernel_size' = [3, '3'] is not Union[int, tuple[int, int]]"),
    ("padding_mode", "zero", "attribute 'padding_mode' = 'zero' is not Literal"),
])
def test_constructor_arguments_from_the_spec_are_type_checked(tmp_path, key, value, message):
    """Without an origin there is no instance to compare with: the constructor's annotations decide."""
    save(nn.Sequential(nn.Conv2d(1, 4, 3)), tmp_path / "m")
    edit_spec(tmp_path / "m", _set_attr("0", key, value))
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path / "m")


def test_a_pruned_conv_is_rebuilt_from_consistent_attributes(tmp_path):
    """The other side of the contradiction checks: attributes that agree with the weights load."""
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    model.features[0] = nn.Conv2d(1, 4, 5, padding=2)
    model.features[3] = nn.Conv2d(4, 16, 5)
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.features[0].out_channels == 4 and loaded.features[0].weight.shape == (4, 1, 5, 5)


@pytest.mark.parametrize("layer, shape", [
    (nn.Embedding(10, 4, padding_idx=0), None),
    (nn.Conv1d(2, 4, 3, groups=2), (2, 2, 7)),
    (nn.ConvTranspose2d(2, 4, 3, stride=2, groups=2), (1, 2, 5, 5)),
    (nn.PReLU(3), (2, 3, 4)),
    (nn.GroupNorm(2, 4), (2, 4, 3)),
    (nn.LayerNorm([4, 3]), (2, 4, 3)),
    (nn.Unflatten(1, (2, 3)), (2, 6)),
    (nn.Upsample(scale_factor=2.0, mode="nearest"), (1, 2, 3, 3)),
    (nn.Hardtanh(-2.0, 2.0), (2, 5)),
    (nn.InstanceNorm1d(3, affine=True, track_running_stats=True), (2, 3, 5)),
])
def test_standard_layers_round_trip(tmp_path, layer, shape):
    torch.manual_seed(0)
    for p in layer.parameters():
        nn.init.normal_(p)
    save(layer.eval(), tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert type(loaded) is type(layer) and repr(loaded) == repr(layer)
    x = torch.randint(0, 10, (2, 5)) if shape is None else torch.randn(*shape)
    assert torch.equal(loaded(x), layer(x))
