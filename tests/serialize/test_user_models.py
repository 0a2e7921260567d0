"""The user's own nn.Module classes: saved by import path, loaded only with trust_code."""

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from torchslim.core import Context
from torchslim.errors import UserError
from torchslim.prune import PruneChannelsConfig, prune_channels_
from torchslim.serialize import load, read_spec, save
from torchslim.zoo import create_model
from tests.serialize.helpers import assert_same, edit_spec, module_entry
from tests.serialize.user_models import Bag, Net, OptionalBias, Residual, ScaledConv, WithConfig, WithNonPersistent, WithPrivate

USER = "tests.serialize.user_models"


@pytest.fixture
def pruned_net():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(2, 1, 8, 8)
    prune_channels_(model, PruneChannelsConfig(target_macs=1.5), Context(x))
    assert model.stem.out_channels < 8 and model.heads["main"].fc.in_features == model.stem.out_channels
    return model, x


def test_custom_module_round_trips_bit_exact_after_pruning(pruned_net, tmp_path):
    model, x = pruned_net
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m", trust_code=True)
    assert type(loaded) is Net and type(loaded.heads["aux"]) is Net.Head
    assert loaded.blocks[0].scale == 0.5 and loaded.heads["main"].dims == (2, 3) and loaded.use == "main"
    assert isinstance(loaded.blocks, nn.ModuleList) and list(loaded.heads) == ["main", "aux"]
    assert loaded.stem.out_channels == model.stem.out_channels
    assert dict(loaded.named_buffers())["heads.main.temperature"].item() == 2.0
    assert_same(model, loaded, x)


def test_user_classes_need_trust_code_and_are_named(pruned_net, tmp_path):
    model, _ = pruned_net
    save(model, tmp_path / "m")
    with pytest.raises(UserError) as info:
        load(tmp_path / "m")
    message = str(info.value)
    for cls in ("Net", "Net.Head", "Residual"):
        assert f"{USER}:{cls}" in message
    assert "trust_code=True" in message and "trust_code: true" in message and "\n" not in message


def test_subclass_of_a_torch_layer_keeps_its_forward(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(ScaledConv(1, 3, 3, gain=3.0), nn.ReLU()).eval()
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m", trust_code=True)
    assert type(loaded[0]) is ScaledConv and loaded[0].gain == 3.0 and loaded[0].padding_mode == "zeros"
    assert_same(model, loaded, torch.randn(2, 1, 6, 6))


def test_zoo_model_with_a_user_block_keeps_its_origin(tmp_path):
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    model.features[1] = Residual(6)
    save(model, tmp_path / "m")
    with pytest.raises(UserError, match=f"{USER}:Residual"):
        load(tmp_path / "m")
    loaded = load(tmp_path / "m", trust_code=True)
    assert loaded._torchslim_origin == model._torchslim_origin and type(loaded.features[1]) is Residual
    assert_same(model, loaded, torch.randn(2, 1, 28, 28))


def test_empty_parameter_buffer_and_module_slots_come_back_empty(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(OptionalBias(3), OptionalBias(3, bias=True)).eval()
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m", trust_code=True)
    assert loaded[0].bias is None and loaded[0].shift is None and loaded[0].post is None and loaded[0].extra is None
    assert "bias" in loaded[0]._parameters and "shift" in loaded[0]._buffers and "post" in loaded[0]._modules
    assert isinstance(loaded[1].bias, nn.Parameter)
    assert_same(model, loaded, torch.randn(2, 3))


def _local_class():
    class Local(nn.Module):
        pass

    return Local()


@pytest.mark.parametrize("make, message", [
    (_local_class, "module 'Local': class _local_class.<locals>.Local is defined inside a function"),
    (lambda: type("MainNet", (nn.Module,), {"__module__": "__main__"})(), "MainNet is defined in __main__"),
    (lambda: nn.Sequential(nn.LSTM(2, 2)), "module '0': class torch.nn.modules.rnn.LSTM is not on torchslim's allow-list"),
])
def test_classes_that_cannot_be_imported_are_refused_before_writing(tmp_path, make, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("<", ".").replace(">", ".")):
        save(make(), tmp_path / "m")
    assert not (tmp_path / "m").exists() and list(tmp_path.iterdir()) == []


def _hooked():
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].register_forward_hook(lambda m, i, o: o * 2)
    return model


def _shared():
    layer = nn.Linear(2, 2)
    return nn.Sequential(layer, nn.ReLU(), layer)


@pytest.mark.parametrize("make, message", [
    (WithConfig, "module '': attribute 'config' (dict) is not saved"),
    (WithPrivate, "module '': private attribute '_gain' is not saved"),
    (WithNonPersistent, "module '': buffer 'offset' is not saved"),
    (_hooked, "module '0': has forward hooks"),
    (_shared, "module '2' is the same module object as '0'"),
])
def test_state_a_spec_cannot_hold_is_refused_and_the_old_save_stays(tmp_path, make, message):
    first = nn.Sequential(nn.Linear(2, 3)).eval()
    save(first, tmp_path / "m")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        save(make(), tmp_path / "m")
    assert "\n" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    assert_same(first, load(tmp_path / "m"), torch.randn(1, 2))


def test_metadata_round_trips_through_read_spec(tmp_path):
    meta = {"preprocessing": {"mean": [0.1307], "std": [0.3081], "layout": "NCHW", "scale": 1 / 255}}
    save(nn.Linear(2, 2), tmp_path / "a", metadata=meta)
    save(nn.Linear(2, 2), tmp_path / "b")
    assert read_spec(tmp_path / "a")["metadata"] == meta
    assert read_spec(tmp_path / "b")["metadata"] == {}
    with pytest.raises(UserError, match="metadata is not JSON-serialisable"):
        save(nn.Linear(2, 2), tmp_path / "c", metadata={"mean": torch.zeros(1)})
    with pytest.raises(UserError, match="metadata must be a dict"):
        save(nn.Linear(2, 2), tmp_path / "c", metadata=[1])


def test_a_class_path_that_does_not_import_is_one_line(pruned_net, tmp_path):
    model, _ = pruned_net
    save(model, tmp_path / "m")
    edit_spec(tmp_path / "m", lambda s: module_entry(s, "").update({"class": "tests.serialize.no_such_module:Net"}))
    with pytest.raises(UserError, match="class tests.serialize.no_such_module:Net: module tests.serialize.no_such_module "
                                        "does not import") as info:
        load(tmp_path / "m", trust_code=True)
    assert "\n" not in str(info.value)
    edit_spec(tmp_path / "m", lambda s: module_entry(s, "").update({"class": f"{USER}:NoSuchNet"}))
    with pytest.raises(UserError, match=f"class {USER}:NoSuchNet: {USER} has no NoSuchNet"):
        load(tmp_path / "m", trust_code=True)
    edit_spec(tmp_path / "m", lambda s: module_entry(s, "").update({"class": "os:getcwd"}))
    with pytest.raises(UserError, match="class os:getcwd is not a torch.nn.Module class"):
        load(tmp_path / "m", trust_code=True)


_SIMPLE = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda n: n != "fc" and not hasattr(Bag, n))


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(_NAMES, _SIMPLE | st.lists(_SIMPLE, max_size=3) | st.tuples(_SIMPLE, _SIMPLE), max_size=4))
def test_any_plain_attribute_comes_back_with_its_type_and_bits(attrs):
    bag = Bag()
    for key, value in attrs.items():
        setattr(bag, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        save(bag, Path(tmp) / "m")
        loaded = load(Path(tmp) / "m", trust_code=True)
    for key, value in attrs.items():
        back = getattr(loaded, key)
        assert type(back) is type(value) and json.dumps(back) == json.dumps(value), key  # -0.0, NaN, inf exact
