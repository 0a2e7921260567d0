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


def test_folder_splits_stream_from_disk_and_match_in_memory_standardisation(tmp_path):
    """Items are decoded on access (deleting a file after loading breaks only that item), and the
    statistics equal those of all training images when the sample covers them."""
    import torch

    from torchslim.data.access import first_samples
    from torchslim.data.transforms import channel_stats

    _make_folder(tmp_path / "pets", mode="RGB")
    s = from_image_folder(tmp_path / "pets", 5, seed=3)
    assert not hasattr(s.train, "tensors") and len(s.train) == 14
    x, y = first_samples(s.train, 14)
    assert x.dtype == torch.float32 and x.shape == (14, 3, 5, 5) and y.dtype == torch.int64
    raw = x.double() * torch.tensor(s.std).view(1, -1, 1, 1) + torch.tensor(s.mean).view(1, -1, 1, 1)
    mean, std = channel_stats(raw)
    assert torch.allclose(mean, torch.tensor(s.mean, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(std, torch.tensor(s.std, dtype=torch.float64), atol=1e-6)
    assert s.preprocessing == {"pixel_scale": 1 / 255, "mean": list(s.mean), "std": list(s.std),
                               "layout": "NCHW", "channels": 3, "image_size": [5, 5]}
    sampled = from_image_folder(tmp_path / "pets", 5, seed=3, stats_samples=4)
    assert sampled.mean != s.mean  # measured on 4 of the 14 training images only
    assert from_image_folder(tmp_path / "pets", 5, seed=3, stats_samples=4).mean == sampled.mean  # seeded
    victim = s.train.items[0][0]
    victim.unlink()
    with pytest.raises(UserError, match=f"unreadable image {victim}"):
        s.train[0]
    s.train[1]  # the others still decode


def test_mixed_channel_counts_name_the_odd_file(tmp_path):
    _make_folder(tmp_path / "pets", per_class=4)  # grey
    odd = tmp_path / "pets" / "dog" / "colour.png"
    Image.fromarray(np.zeros((5, 5, 3), dtype=np.uint8), mode="RGB").save(odd)
    with pytest.raises(UserError, match=f"mixes channel counts: {odd} is colour \\(1 colour image\\(s\\), 8 grey\\); "
                                        "set channels: 1 or 3") as info:
        from_image_folder(tmp_path / "pets", 5)
    assert "\n" not in str(info.value)
    assert from_image_folder(tmp_path / "pets", 5, channels=3).input_shape == (3, 5, 5)
    assert from_image_folder(tmp_path / "pets", 5, channels=1).input_shape == (1, 5, 5)
