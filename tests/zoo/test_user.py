"""A user's builder by import path and weights from a file: exact loads, one-line refusals."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from torchslim.errors import UserError
from torchslim.zoo.user import build_user_model, check_builder_kwargs, load_weights_, with_data_kwargs, import_builder

MLP = "tests.byom_pkg.models:make_mlp"


@pytest.mark.parametrize("path, message", [
    ("tests.byom_pkg.models", "expected an import path like 'my_pkg.models:make_net'"),
    ("no_such_pkg.models:make", "module 'no_such_pkg.models' is not importable (no module named 'no_such_pkg'"),
    ("tests.byom_pkg.nothere:make",
     "module 'tests.byom_pkg.nothere' is not importable (no module named 'tests.byom_pkg.nothere'"),
    ("tests.byom_pkg.broken:make",
     "importing module 'tests.byom_pkg.broken' failed (RuntimeError: this module fails at import)"),
    ("tests.byom_pkg.models:make_mpl", "'tests.byom_pkg.models' has no attribute 'make_mpl'"),
    ("tests.byom_pkg.models:make_mlp.nope", "'tests.byom_pkg.models:make_mlp' has no attribute 'nope'"),
    ("tests.byom_pkg.models:NOT_CALLABLE", "int object is not callable"),
])
def test_bad_builder_paths_are_one_line(path, message):
    with pytest.raises(UserError) as info:
        import_builder(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_kwargs_are_checked_against_the_signature():
    check_builder_kwargs(MLP, {"hidden": 8})
    with pytest.raises(UserError, match=r"does not accept argument 'hiden' \(it accepts: in_channels, num_classes, "
                                        r"hidden, image_size\)"):
        check_builder_kwargs(MLP, {"hiden": 8})
    with pytest.raises(UserError, match="missing a required argument: 'in_features'"):
        check_builder_kwargs("torch.nn:Linear", {"out_features": 2})
    # data-derived arguments go only to a builder that takes them
    fixed = import_builder("tests.byom_pkg.models:make_fixed")
    assert with_data_kwargs(fixed, {}, in_channels=3, num_classes=5) == {}
    assert with_data_kwargs(import_builder(MLP), {"num_classes": 2}, in_channels=3, num_classes=5) == {
        "num_classes": 2, "in_channels": 3}


def test_builder_must_return_a_module():
    with pytest.raises(UserError, match="returned str, not a torch.nn.Module"):
        build_user_model("tests.byom_pkg.models:not_a_module", {})
    model = build_user_model(MLP, {"hidden": 5})
    assert model[1].out_features == 5 and not hasattr(model, "_torchslim_origin")  # saved by its classes


@pytest.fixture
def trained():
    torch.manual_seed(1)
    return build_user_model(MLP, {})


@pytest.mark.parametrize("kind", ["safetensors", "pt", "pt_nested"])
def test_weights_load_bit_exactly_from_either_format(tmp_path, trained, kind):
    state = trained.state_dict()
    if kind == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    else:
        path = tmp_path / "w.pt"
        torch.save({"state_dict": state, "epoch": 3} if kind == "pt_nested" else state, path)
    torch.manual_seed(2)
    fresh = build_user_model(MLP, {})
    assert not torch.equal(fresh[1].weight, trained[1].weight)
    load_weights_(fresh, path)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in state.items())


def test_mismatched_weights_name_the_first_keys(tmp_path, trained):
    path = tmp_path / "w.safetensors"
    save_file({"1.weight": torch.zeros(16, 64), "extra.bias": torch.zeros(2)}, str(path))
    with pytest.raises(UserError, match=r"keys do not match the model \(missing '1.bias', '3.weight', '3.bias'; "
                                        r"unexpected 'extra.bias'\)"):
        load_weights_(trained, path)
    state = dict(trained.state_dict())
    state["3.weight"] = torch.zeros(3, 16)
    save_file(state, str(path))
    with pytest.raises(UserError, match=r"'3.weight' has shape \(3, 16\), the model's is \(10, 16\)$"):
        load_weights_(trained, path)


def test_unsafe_or_broken_weight_files_are_refused(tmp_path, trained):
    pickled = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 2), pickled)  # a whole pickled module: weights_only refuses to unpickle it
    with pytest.raises(UserError, match="holds more than tensors"):
        load_weights_(trained, pickled)
    garbage = tmp_path / "w.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_weights_(trained, garbage)
    (tmp_path / "w.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable torch.save file"):
        load_weights_(trained, tmp_path / "w.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(UserError, match="not a state dict"):
        load_weights_(trained, tmp_path / "list.pt")
    with pytest.raises(UserError, match="weights file does not exist"):
        load_weights_(trained, tmp_path / "missing.pt")
