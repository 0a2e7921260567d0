"""Deployable preprocessing: the constants recorded in ONNX metadata, and an export that takes
raw pixels and predicts what the Python pipeline (standardise, then the model) predicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchslim.data import load_dataset
from torchslim.data.bundled import TEST_FRACTION, VAL_FRACTION, read_mnist5k
from torchslim.data.splits import split_sizes, stratified_split
from torchslim.errors import UserError
from torchslim.profiler import export_onnx, onnx_session
from torchslim.profiler.onnx_export import onnx_preprocessing
from torchslim.profiler.preprocessing import WithPreprocessing, check_preprocessing, data_preprocessing
from torchslim.train import fit
from torchslim.zoo import create_model


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k", seed=0)


def _raw_test_images(seed: int = 0) -> torch.Tensor:
    """The bundled test split's images as the raw 0..255 pixels they were read as, independently of
    the standardised tensors: the same source file and the same seeded stratified split."""
    x, y = read_mnist5k()
    n_val, n_test = split_sizes(len(y), VAL_FRACTION, TEST_FRACTION, source="mnist5k")
    test_idx = stratified_split(y, n_val, n_test, seed)[2]
    return torch.from_numpy(x[test_idx]).float().view(-1, 1, 28, 28)


def test_data_preprocessing_holds_the_training_split_constants(mnist) -> None:
    pre = data_preprocessing(mnist)
    assert pre == {"pixel_scale": 1 / 255, "mean": list(mnist.mean), "std": list(mnist.std), "layout": "NCHW",
                   "channels": 1, "image_size": [28, 28]}
    raw = _raw_test_images()
    assert raw.min() == 0 and raw.max() == 255
    # The constants turn raw pixels into exactly the tensors the model is trained and tested on.
    standardised = (raw * pre["pixel_scale"] - pre["mean"][0]) / pre["std"][0]
    torch.testing.assert_close(standardised, mnist.test.tensors[0], atol=1e-6, rtol=0)
    assert data_preprocessing(None) is None


def test_raw_pixel_export_predicts_like_the_python_pipeline(mnist, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("zoo:lenet5", batch_norm=True)
    fit(model, mnist.train, epochs=1, batch_size=64, lr=0.05, progress=False)
    model.eval()
    pre = data_preprocessing(mnist)
    x_test, y_test = mnist.test.tensors
    path = export_onnx(model, x_test[:1], tmp_path / "raw.onnx", preprocessing=pre, include_preprocessing=True)

    raw = _raw_test_images().numpy()
    ort_logits = onnx_session(path, threads=1).run(None, {"input": raw})[0]
    with torch.no_grad():
        python_logits = model(x_test).numpy()
    assert (python_logits.argmax(1) == y_test.numpy()).mean() > 0.9  # a model that learned something
    np.testing.assert_array_equal(ort_logits.argmax(1), python_logits.argmax(1))
    np.testing.assert_allclose(ort_logits, python_logits, atol=1e-4, rtol=0)
    assert onnx_preprocessing(path) == {**pre, "in_graph": True}


def test_plain_export_records_preprocessing_and_still_takes_standardised_inputs(mnist, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("zoo:lenet5").eval()
    pre = data_preprocessing(mnist)
    x = mnist.test.tensors[0][:4]
    path = export_onnx(model, x[:1], tmp_path / "m.onnx", preprocessing=pre)
    out = onnx_session(path, threads=1).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5, rtol=0)
    assert onnx_preprocessing(path) == {**pre, "in_graph": False}
    assert onnx_preprocessing(export_onnx(model, x[:1], tmp_path / "bare.onnx")) is None


def test_wrapper_is_scale_then_standardise_per_channel() -> None:
    pre = {"pixel_scale": 0.5, "mean": [1.0, -2.0], "std": [2.0, 4.0]}
    seen = []
    wrapped = WithPreprocessing(torch.nn.Identity(), pre)
    wrapped.model.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.tensor([[[[6.0]], [[8.0]]]])  # (1, 2, 1, 1)
    wrapped(x)
    assert seen[0].flatten().tolist() == [(3.0 - 1.0) / 2.0, (4.0 + 2.0) / 4.0]


def test_export_with_preprocessing_needs_the_constants(tmp_path) -> None:
    with pytest.raises(UserError, match="include_preprocessing=True needs"):
        export_onnx(torch.nn.Identity(), torch.zeros(1, 1, 2, 2), tmp_path / "x.onnx", include_preprocessing=True)


@pytest.mark.parametrize(("pre", "message"), [
    ({"mean": [0.0], "std": [1.0]}, "missing field.*pixel_scale"),
    ({"pixel_scale": 0, "mean": [0.0], "std": [1.0]}, "pixel_scale must be a positive number"),
    ({"pixel_scale": 1, "mean": [0.0, 1.0], "std": [1.0]}, "one value per channel"),
    ({"pixel_scale": 1, "mean": [0.0], "std": [0.0]}, "std values must be > 0"),
    ({"pixel_scale": 1, "mean": [0.0], "std": [1.0], "layout": "NHWC"}, "layout must be 'NCHW'"),
])
def test_bad_preprocessing_is_one_line_naming_the_field(pre, message) -> None:
    with pytest.raises(UserError, match=message):
        check_preprocessing(pre)
