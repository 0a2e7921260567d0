from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from torchslim.data import load_data
from torchslim.errors import UserError


def test_dispatch(tmp_path):
    assert load_data("digits").name == "digits"
    assert load_data("data:digits", image_size=10).input_shape == (1, 10, 10)
    np.savez(tmp_path / "a.npz", x=np.zeros((10, 2, 3, 3), np.float32), y=np.arange(10) % 2)
    assert load_data(f"npz:{tmp_path / 'a.npz'}").input_shape == (2, 3, 3)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (4, 4), color=i * 40).save(tmp_path / "imgs" / cls / f"{i}.png")
    assert load_data(f"folder:{tmp_path / 'imgs'}", image_size=6).input_shape == (1, 6, 6)


def test_bad_specs():
    with pytest.raises(
        UserError, match="unknown data spec 'csv:x.csv'; use one of digits, mnist5k"
    ):
        load_data("csv:x.csv")
    with pytest.raises(UserError, match="unknown dataset 'mnist'"):
        load_data("mnist")
    with pytest.raises(UserError, match="'folder:/tmp' needs image_size"):
        load_data("folder:/tmp")
    with pytest.raises(UserError, match="'digits' does not take val_fraction; options: image_size"):
        load_data("digits", val_fraction=0.3)


def test_import_starts_no_heavy_dependency():
    code = (
        "import sys, torchslim.data, torchslim.train; "
        "print(sorted(m for m in ('sklearn', 'mlxtend', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
