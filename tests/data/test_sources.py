"""One source per split (recipe ``data: {train:, val:, test:}``): each given split is that whole
source, standardised with the train source's constants (oracle: by hand from the raw arrays)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchslim.data.sources import load_split_sources
from torchslim.errors import UserError


def _npz(path, n: int, seed: int, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
    y = np.arange(n) % classes
    np.savez(path, x=x, y=y)
    return x, y


def test_test_source_is_whole_and_standardised_with_the_train_constants(tmp_path):
    _npz(tmp_path / "train.npz", 40, 0)
    x_test, y_test = _npz(tmp_path / "test.npz", 12, 1)
    splits = load_split_sources(f"npz:{tmp_path / 'train.npz'}", test=f"npz:{tmp_path / 'test.npz'}")
    assert len(splits.train) + len(splits.val) == 40  # nothing of the train file held out for test
    x, y = splits.test.tensors
    assert torch.equal(y, torch.from_numpy(y_test).long())
    expected = (torch.from_numpy(x_test).float()[:, None] / 255 - splits.mean[0]) / splits.std[0]
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)
    # the train constants are the train split's own: its standardised images have mean 0, std 1
    train_x = splits.train.tensors[0]
    assert abs(float(train_x.mean())) < 1e-5 and abs(float(train_x.std(unbiased=False)) - 1) < 1e-5


def test_folder_val_source_streams_with_the_train_constants(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for root, n in (("train", 6), ("val", 3)):
        for name in ("a", "b"):
            (tmp_path / root / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(
                    tmp_path / root / name / f"{i}.png")
    splits = load_split_sources(f"folder:{tmp_path / 'train'}", val=f"folder:{tmp_path / 'val'}", image_size=8)
    assert len(splits.val) == 6 and len(splits.train) + len(splits.test) == 12
    assert not hasattr(splits.val, "tensors")  # still decoded per item
    x, _ = splits.val[0]
    torch.testing.assert_close(x, (splits.val.raw(0) - splits.mean[0]) / splits.std[0])


def test_sources_must_agree(tmp_path):
    _npz(tmp_path / "train.npz", 40, 0)
    _npz(tmp_path / "three.npz", 12, 1, classes=3)
    with pytest.raises(UserError, match=r"^data: test: .*three.npz.* has classes \['0', '1', '2'\]"):
        load_split_sources(f"npz:{tmp_path / 'train.npz'}", test=f"npz:{tmp_path / 'three.npz'}")
    with pytest.raises(UserError, match="^data: val: 'mnist5k' must be an npz: or folder: source"):
        load_split_sources(f"npz:{tmp_path / 'train.npz'}", val="mnist5k")


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "mnist5k", "train": "mnist5k"}, "give either 'name'"),
    ({"test": "npz:t.npz"}, "give either 'name'"),
    ({"name": "mnist5k", "test": "npz:t.npz"}, "go with a 'train' source"),
    ({"train": "mnist5k", "test": "digits"}, "test: 'digits' must be an npz: or folder: source"),
    ({"train": "mnist5k", "val": "npz:missing.npz"}, "val: '.*missing.npz' does not exist"),
])
def test_recipe_data_section_checks(data, message):
    from torchslim.recipes.schema import parse_recipe

    raw = {"model": "zoo:lenet5", "data": data, "steps": ["fold.bn"]}
    with pytest.raises(UserError, match=f"^r.yaml: data: .*{message}"):
        parse_recipe(raw, "r.yaml")


def test_recipe_paths_per_split_are_relative_to_the_recipe(tmp_path, monkeypatch):
    from torchslim.recipes.runner import _load_data
    from torchslim.recipes.schema import load_recipe

    _npz(tmp_path / "test.npz", 12, 1, classes=10)
    (tmp_path / "r.yaml").write_text("model: zoo:lenet5\ndata: {train: digits, test: npz:test.npz, image_size: 8}\n"
                                     "steps: [fold.bn]\n")
    monkeypatch.chdir(tmp_path.parent)
    splits = _load_data(load_recipe(tmp_path / "r.yaml"))
    assert len(splits.test) == 12 and splits.input_shape == (1, 8, 8)
