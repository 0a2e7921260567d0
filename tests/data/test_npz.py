from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from split_checks import example_multiset, splits_multiset  # noqa: E402

from torchslim.data import from_npz  # noqa: E402
from torchslim.errors import UserError  # noqa: E402


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(50, 6, 6), dtype=np.uint8), np.arange(50) % 3


def test_round_trip_uint8_nhw(tmp_path, images):
    x, y = images
    s = from_npz(_save(tmp_path / "mine.npz", x=x, y=y), seed=4)
    assert s.name == "mine" and s.num_classes == 3 and s.input_shape == (1, 6, 6)
    assert (len(s.train), len(s.val), len(s.test)) == (35, 5, 10)
    assert s.pixel_scale == pytest.approx(1 / 255)
    assert splits_multiset(s) == example_multiset(x[:, None].astype(np.float64), y)


def test_float_nchw_resized_and_repeated(tmp_path):
    x = np.random.default_rng(1).normal(size=(20, 1, 4, 4)).astype(np.float32)
    s = from_npz(_save(tmp_path / "f.npz", x=x, y=np.arange(20) % 2), image_size=8, channels=3)
    assert s.input_shape == (3, 8, 8) and s.pixel_scale == 1.0


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(y=np.zeros(3, np.int64)), r"missing array 'x' \(found: y\)"),
        (dict(x=np.zeros((3, 4, 4))), r"missing array 'y' \(found: x\)"),
        (
            dict(x=np.zeros((3, 4, 4)), y=np.zeros(2, np.int64)),
            "x has 3 examples but y has 2 labels",
        ),
        (
            dict(x=np.zeros((3, 4, 4)), y=np.zeros(3)),
            "y must hold integer class labels, got dtype float64",
        ),
        (
            dict(x=np.zeros((3, 4, 4)), y=np.zeros(3, bool)),
            "y must hold integer class labels, got dtype bool",
        ),
        (dict(x=np.zeros((3, 4, 4)), y=-np.ones(3, np.int64)), "negative label -1"),
        (dict(x=np.zeros((3, 4, 4)), y=np.zeros((3, 1), np.int64)), r"y must be 1-D"),
        (
            dict(x=np.array(["a", "b"]), y=np.zeros(2, np.int64)),
            "x must be an integer or float array",
        ),
        (
            dict(x=np.zeros((3, 4)), y=np.zeros(3, np.int64)),
            r"x must be \(N, C, H, W\) or \(N, H, W\)",
        ),
        (dict(x=np.zeros((3, 8, 8, 3)), y=np.zeros(3, np.int64)), "looks channels-last"),
        (dict(x=np.full((3, 4, 4), np.nan), y=np.zeros(3, np.int64)), "NaN or infinite"),
        (dict(x=np.zeros((0, 4, 4)), y=np.zeros(0, np.int64)), "x holds no examples"),
        (
            dict(x=np.array([None, 1], dtype=object), y=np.zeros(2, np.int64)),
            "array 'x' holds Python objects",
        ),
    ],
)
def test_bad_arrays_name_file_and_field(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message) as info:
        from_npz(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="npz file not found: .*nope.npz"):
        from_npz(tmp_path / "nope.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(UserError, match="garbage.npz: not an .npz archive"):
        from_npz(garbage)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(UserError, match="single.npy: not an .npz archive"):
        from_npz(single)


def test_truncated_zip_and_float32_overflow_are_one_line(tmp_path):
    import io

    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((10, 1, 4, 4)), y=np.arange(10) % 2)
    for name, payload in (("half.npz", buf.getvalue()[: len(buf.getvalue()) // 2]),
                          ("header.npz", b"PK\x03\x04" + b"\x00" * 40)):
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(UserError, match=f"{name}: not an .npz archive") as info:
            from_npz(tmp_path / name)
        assert "\n" not in str(info.value)
    x = np.ones((10, 1, 4, 4))
    x[3, 0, 1, 1] = 1e300  # finite in float64, inf in float32
    np.savez(tmp_path / "big.npz", x=x, y=np.arange(10) % 2)
    with pytest.raises(UserError, match=r"big.npz: x holds values up to 1e\+300, beyond float32's range"):
        from_npz(tmp_path / "big.npz")
    x[3, 0, 1, 1] = 3e38  # the largest float32 is 3.4e38: still fine
    np.savez(tmp_path / "edge.npz", x=x, y=np.arange(10) % 2)
    assert np.isfinite(from_npz(tmp_path / "edge.npz").train.tensors[0].numpy()).all()
