from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from split_checks import example_multiset, splits_multiset  # noqa: E402

from torchslim.data import from_image_folder  # noqa: E402
from torchslim.errors import UserError  # noqa: E402


def _make_folder(root: Path, per_class: int = 10, mode: str = "L") -> dict[str, list[np.ndarray]]:
    """root/<class>/<i>.png with distinct random 5x5 images; returns the pixel arrays."""
    rng = np.random.default_rng(0)
    made: dict[str, list[np.ndarray]] = {}
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        made[name] = []
        for i in range(per_class):
            shape = (5, 5) if mode == "L" else (5, 5, 3)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{i:02d}.png")
            made[name].append(pixels)
    (root / "cat" / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    (root / ".hidden").mkdir()  # ignored: hidden
    return made


def test_grey_folder_round_trip(tmp_path):
    made = _make_folder(tmp_path / "pets")
    s = from_image_folder(tmp_path / "pets", 5, seed=1)
    assert s.name == "pets" and s.class_names == ("cat", "dog") and s.num_classes == 2
    assert s.input_shape == (1, 5, 5)
    assert (len(s.train), len(s.val), len(s.test)) == (14, 2, 4)
    x = np.stack(made["cat"] + made["dog"])[:, None].astype(np.float64)
    y = np.array([0] * 10 + [1] * 10)
    assert splits_multiset(s) == example_multiset(x, y)


def test_rgb_folder_gets_three_channels_and_can_be_forced_grey(tmp_path):
    made = _make_folder(tmp_path / "pets", mode="RGB")
    s = from_image_folder(tmp_path / "pets", 5)
    assert s.input_shape == (3, 5, 5)
    x = np.stack(made["cat"] + made["dog"]).transpose(0, 3, 1, 2).astype(np.float64)
    assert splits_multiset(s) == example_multiset(x, np.array([0] * 10 + [1] * 10))
    assert from_image_folder(tmp_path / "pets", 7, channels=1).input_shape == (1, 7, 7)


def test_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(UserError, match="image folder not found: .*missing"):
        from_image_folder(tmp_path / "missing", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="image folder .*empty has no class sub-folders"):
        from_image_folder(tmp_path / "empty", 8)
    _make_folder(tmp_path / "pets", per_class=3)
    (tmp_path / "pets" / "bird").mkdir()
    with pytest.raises(UserError, match="class folder .*bird has no images"):
        from_image_folder(tmp_path / "pets", 8)
    (tmp_path / "pets" / "bird" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UserError, match="unreadable image .*bird/broken.png"):
        from_image_folder(tmp_path / "pets", 8)
    with pytest.raises(UserError, match="image_size"):
        from_image_folder(tmp_path / "pets", 0)
