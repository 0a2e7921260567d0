"""Registry behaviour: names, errors, origin metadata, example inputs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.zoo import ModelInfo, create_model, example_input, list_models, model_info, register_model

EXPECTED_NAMES = [
    "densenet",
    "efficientnet_b0",
    "lenet300",
    "lenet5",
    "mobilenetv2",
    "mobilenetv3",
    "resnet20",
    "resnet50",
    "resnet56",
    "shufflenetv2",
    "squeezenet",
    "vgg11",
    "vgg16",
    "vit",
]


def test_list_models_is_sorted_and_complete():
    assert list_models() == EXPECTED_NAMES


def test_model_info_is_frozen_and_accepts_prefix():
    info = model_info("zoo:resnet50")
    assert info == ModelInfo("resnet50", (3, 224, 224), 1000, info.description)
    assert model_info("lenet5").input_shape == (1, 28, 28)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.num_classes = 10  # type: ignore[misc]


def test_unknown_name_lists_known_names_on_one_line():
    with pytest.raises(UserError) as exc:
        create_model("resnet21")
    message = str(exc.value)
    assert "\n" not in message and "'resnet21'" in message
    assert all(name in message for name in list_models())
    with pytest.raises(UserError):
        model_info("zoo:nope")


def test_unknown_kwarg_names_kwarg_and_model():
    with pytest.raises(UserError, match=r"'resnet20'.*'width_mult'.*in_channels, num_classes$"):
        create_model("resnet20", width_mult=0.5)
    with pytest.raises(UserError, match=r"'shufflenetv2'.*'widht_mult'.*width_mult"):
        create_model("zoo:shufflenetv2", widht_mult=1.0)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("lenet5", {"in_channels": 0}),
        ("resnet20", {"num_classes": 2.5}),
        ("vgg16", {"image_size": 16}),  # five 2x2 max-pools need >= 32
        ("shufflenetv2", {"width_mult": 0.75}),
        ("shufflenetv2", {"width_mult": [1.0]}),
        ("mobilenetv2", {"width_mult": -1.0}),
        ("densenet", {"depth": 41}),
        ("vit", {"image_size": 30}),  # not a multiple of patch_size 4
        ("vit", {"num_heads": 5}),  # dim 64 not divisible
        ("mobilenetv2", {"width_mult": torch.tensor(1.0)}),  # not JSON-serialisable
        ("mobilenetv3", {"variant": "medium"}),
        ("mobilenetv3", {"image_size": 16}),
        ("efficientnet_b0", {"width_mult": 0.0}),
        ("efficientnet_b0", {"depth_mult": "2"}),
    ],
)
def test_bad_values_are_user_errors(name, kwargs):
    with pytest.raises(UserError, match=name):
        create_model(name, **kwargs)


def test_duplicate_registration_raises_and_keeps_original():
    before = model_info("lenet5")
    with pytest.raises(ValueError, match="already registered"):

        @register_model("lenet5", input_shape=(1, 28, 28), num_classes=10, description="dup")
        def _dup(*, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
            return nn.Identity()

    assert model_info("lenet5") is before


def test_builder_must_match_metadata_and_take_required_params():
    with pytest.raises(ValueError, match="num_classes"):

        @register_model("_test_no_classes", input_shape=(1, 8, 8), num_classes=10, description="")
        def _bad(*, in_channels: int = 1) -> nn.Module:
            return nn.Identity()

    with pytest.raises(ValueError, match="disagrees"):

        @register_model("_test_mismatch", input_shape=(3, 8, 8), num_classes=10, description="")
        def _bad2(*, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
            return nn.Identity()

    assert list_models() == EXPECTED_NAMES


def test_origin_records_every_resolved_kwarg():
    model = create_model("zoo:vgg16", in_channels=1, num_classes=10, image_size=32)
    assert model._torchslim_origin == {
        "name": "vgg16",
        "kwargs": {"in_channels": 1, "num_classes": 10, "image_size": 32, "width_mult": 1.0},
        "input_shape": [1, 32, 32],
        "num_classes": 10,
    }
    origin = create_model("lenet5")._torchslim_origin
    assert origin == {
        "name": "lenet5",
        "kwargs": {"in_channels": 1, "num_classes": 10, "batch_norm": False},
        "input_shape": [1, 28, 28],
        "num_classes": 10,
    }
    assert json.loads(json.dumps(origin)) == origin


def test_example_input_is_seeded_and_shaped():
    a = example_input("resnet20", batch_size=2)
    b = example_input("zoo:resnet20", batch_size=2)
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, example_input("resnet20", batch_size=2, seed=1))
    model = create_model("vgg11", in_channels=1, image_size=48)
    assert example_input(model, batch_size=3).shape == (3, 1, 48, 48)
    with pytest.raises(UserError, match="Linear"):
        example_input(nn.Linear(2, 2))


def test_width_mult_scales_every_stage_and_is_checked():
    import pytest as _pytest
    from torch import nn as _nn

    from torchslim.errors import UserError as _UserError

    resnet = create_model("zoo:resnet50", width_mult=0.25, num_classes=10)
    assert resnet.conv1.out_channels == 16 and resnet.fc.in_features == 512  # 2048 / 4
    vgg = create_model("zoo:vgg16", image_size=32, width_mult=0.5)
    assert [m.out_channels for m in vgg.modules() if isinstance(m, _nn.Conv2d)][:3] == [32, 32, 64]
    for bad in (0, -1.0, 5.0, True, "x"):
        with _pytest.raises(_UserError, match="width_mult must be a number in"):
            create_model("zoo:vgg11", width_mult=bad)
