"""The .tsc file: bit-exact round trips of tensors and models; damaged files give UserError."""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import small_model
from torchslim.codec import FORMAT_VERSION, MAGIC, decode_model, decode_state_dict, encode_bytes, write_model
from torchslim.codec.container import DIGEST_BYTES
from torchslim.codec.tensor import decode_tensor, encode_tensor, to_bits
from torchslim.errors import UserError


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(to_bits(a), to_bits(b))


def _pruned_shared(shape: tuple[int, ...], density: float, bits: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    codebook = torch.randn(2**bits, generator=gen)
    idx = torch.randint(0, 2**bits, shape, generator=gen)
    return torch.where(torch.rand(shape, generator=gen) < density, codebook[idx], 0.0)


float_bits = st.integers(0, 2**32 - 1).map(lambda b: np.array([b], dtype=np.uint32).view(np.float32)[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(float_bits, min_size=0, max_size=300), st.floats(0, 1), st.sampled_from(["auto", "huffman", "rans"]))
def test_any_float32_tensor_round_trips_bit_exactly(values, zero_fraction, coder):
    t = torch.tensor(np.array(values, dtype=np.float32))
    t[: int(zero_fraction * t.numel())] = 0.0  # -0.0, NaN payloads and infinities stay as they are
    entry, payload, _ = encode_tensor("w", t, coder)
    assert _same_bits(decode_tensor(entry, payload), t)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.uint8, torch.bool])
def test_other_dtypes_round_trip(dtype):
    t = (torch.randn(7, 5) * 3).to(dtype)
    t.view(-1)[::3] = 0
    entry, payload, _ = encode_tensor("w", t)
    assert _same_bits(decode_tensor(entry, payload), t)


def test_layouts_follow_the_data():
    def layout(t: torch.Tensor) -> str:
        return encode_tensor("w", t)[0]["layout"]

    assert layout(torch.randn(50, 50)) == "raw"
    assert layout(torch.where(torch.rand(50, 50) < 0.05, torch.randn(50, 50), 0.0)) == "sparse_raw"
    assert layout(_pruned_shared((100, 100), 0.1, 5)) == "sparse_codebook"
    assert layout(_pruned_shared((100, 100), 1.0, 2)) == "codebook"


def test_float16_exact_values_are_stored_in_two_bytes():
    t = torch.randn(64).half().float()
    entry, payload, stats = encode_tensor("b", t)
    assert entry["store"] == "float16" and len(payload) == 128
    assert _same_bits(decode_tensor(entry, payload), t)


def test_fixed_index_bits_is_respected():
    entry, _, stats = encode_tensor("w", _pruned_shared((300, 100), 0.09, 6), index_bits=5)
    assert entry["index_bits"] == 5 and stats.bits == 6


def _compressed_lenet(tmp_path):
    model, x = small_model("lenet300")
    with torch.no_grad():
        for i, layer in enumerate(m for m in model.modules() if isinstance(m, torch.nn.Linear)):
            layer.weight.copy_(_pruned_shared(tuple(layer.weight.shape), 0.1, 5, seed=i))
    path, stats, overhead = write_model(model, tmp_path / "m.tsc")
    return model, x, path


def test_model_round_trip_is_bit_exact_and_runs(tmp_path):
    model, x, path = _compressed_lenet(tmp_path)
    restored = decode_model(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert _same_bits(a, b), name
    assert torch.equal(model(x), restored(x))
    assert path.stat().st_size < 1066440 / 25
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "mobilenetv2", "vit"])
def test_zoo_models_round_trip(name, tmp_path):
    model, x = small_model(name)
    path, _, _ = write_model(model, tmp_path / "m.tsc")
    restored = decode_model(path)
    assert torch.equal(model(x), restored(x))


def test_changed_architecture_is_embedded_and_rebuilt(tmp_path):
    model, x = small_model("lenet5")
    model.classifier[0] = torch.nn.Linear(400, 120, bias=False)
    restored = decode_model(write_model(model, tmp_path / "m.tsc")[0])
    assert restored.classifier[0].bias is None and torch.equal(model(x), restored(x))


def test_every_flipped_byte_is_detected(tmp_path):
    _, _, path = _compressed_lenet(tmp_path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for pos in sorted(set(rng.integers(0, len(data), 150).tolist()) | {0, 8, 9, 12, len(data) - 1}):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(bad))
        with pytest.raises(UserError):
            decode_model(path)


def test_truncated_files_are_detected(tmp_path):
    _, _, path = _compressed_lenet(tmp_path)
    data = path.read_bytes()
    for size in (0, 4, 8, 16, 30, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(UserError):
            decode_model(path)


def test_wrong_magic_and_version(tmp_path):
    _, _, path = _compressed_lenet(tmp_path)
    data = path.read_bytes()
    path.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(UserError, match="not a torchslim compressed model"):
        decode_model(path)
    newer = bytearray(data)
    struct.pack_into("<H", newer, len(MAGIC), FORMAT_VERSION + 1)
    path.write_bytes(bytes(newer))
    with pytest.raises(UserError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        decode_model(path)


def test_damaged_record_with_a_valid_digest_is_still_rejected(tmp_path):
    # A writer bug (not disk damage) that produces a consistent digest: the structural checks
    # (exact byte use, counts, symbol ranges) must still refuse the file.
    model, _, path = _compressed_lenet(tmp_path)
    body = path.read_bytes()[:-DIGEST_BYTES]
    for cut in (1, 5):
        short = body[:-cut]
        path.write_bytes(short + hashlib.blake2b(short, digest_size=DIGEST_BYTES).digest())
        with pytest.raises(UserError, match="does not decode|unexpected bytes"):
            decode_state_dict(path)


def test_state_dict_without_origin(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    data, _, _ = encode_bytes(model)
    (tmp_path / "m.tsc").write_bytes(data)
    header, state = decode_state_dict(tmp_path / "m.tsc")
    assert torch.equal(state["0.weight"], model[0].weight.detach())
    with pytest.raises(UserError, match="no architecture origin"):
        decode_model(tmp_path / "m.tsc")
