"""Catalogue rows for the classes other parts of torchslim guard (issue 18 sections 2, 3, 4, 5):
saved models verified (serialize/), output folders locked (core/outdir.py), the CLI's model
paths, data files and the training loop. Issue examples -> case id:

  flipped weight bits -> saved-weight-bit-flipped; spec edited -> saved-spec-edited;
  spec attributes ``__class__`` / ``__dict__`` -> saved-spec-dunder-class, saved-spec-dunder-dict;
  ``forward`` -> saved-spec-forward; dtype outside torch's -> saved-spec-dtype; ``out_channels: 7``
  over 6 filters -> saved-spec-out-channels-7; save never replaces a loadable model with one it
  cannot load -> save-refuses-hooked-model; a checkpoint of a class torchslim cannot build ->
  recipe-checkpoint-user-class; two runs into one --out -> run-out-locked; a read-only or
  unwritable --out -> run-out-unwritable, run-out-is-a-file; profile of a missing
  path -> profile-missing-path / profile-missing-tsc; paths relative to the recipe's folder ->
  recipe-relative-data-path; ``.npz`` not an archive (BadZipFile) -> run-npz-not-an-archive;
  float64 overflowing float32 -> run-npz-float32-overflow; mixed channel counts -> run-folder-mixed-channels;
  labels out of range / float labels / NaN loss or lr in ``fit`` -> fit-label-out-of-range,
  fit-labels-float, fit-loss-nan, fit-lr-nan. (A built-in recipe name shadowed by a folder, and
  BatchNorm's last batch of one sample, are not errors: test_catalogue.py checks them apart.)
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import torch
from harness import Api, Cli, recipe
from torch import nn
from torch.utils.data import TensorDataset

import torchslim
from torchslim.core.outdir import LOCK_FILE


def _saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    torchslim.save(torchslim.create_model("zoo:lenet5", batch_norm=True).eval(), tmp_path / "saved")
    return tmp_path / "saved"


def _flip_bit(tmp_path: Path) -> None:
    weights = _saved(tmp_path) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))


def _edit(change):  # noqa: ANN001, ANN202 - spec -> None
    def setup(tmp_path: Path) -> None:
        from tests.serialize.helpers import edit_spec  # re-digests, to reach the checks behind the digest

        edit_spec(_saved(tmp_path), change)

    return setup


def _module(spec: dict, name: str) -> dict:
    return next(e for e in spec["modules"] if e["name"] == name)


def _set_attr(name: str, key: str, value: object):  # noqa: ANN202
    return lambda spec: _module(spec, name)["attrs"].__setitem__(key, value)


def _edit_raw_spec(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    spec = json.loads((folder / "spec.json").read_text())
    _module(spec, "features.0")["attrs"]["stride"] = [2, 2]
    (folder / "spec.json").write_text(json.dumps(spec))


def _hooked() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].register_forward_hook(lambda m, i, o: o * 2)
    return model


def _fit(x: torch.Tensor, y: torch.Tensor, **kwargs: object) -> None:
    from torchslim.train import fit

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    fit(model, TensorDataset(x, y), epochs=1, batch_size=4, progress=False, **kwargs)


X = torch.randn(8, 1, 2, 2)
Y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


def _npz(tmp_path: Path, name: str, x: np.ndarray) -> None:
    np.savez(tmp_path / name, x=x, y=np.arange(len(x)) % 2)


def _user_class_checkpoint(tmp_path: Path) -> None:
    from tests.serialize.user_models import Net

    torchslim.save(Net().eval(), tmp_path / "ckpt")


def _images(tmp_path: Path) -> None:
    from PIL import Image

    for cls, mode in (("a", "L"), ("a", "L"), ("b", "L"), ("b", "RGB")):
        folder = tmp_path / "imgs" / cls
        folder.mkdir(parents=True, exist_ok=True)
        Image.new(mode, (8, 8)).save(folder / f"{len(list(folder.iterdir()))}.png")


def _setup_then_cli(setup, case: Cli) -> Cli:  # noqa: ANN001
    """A CLI case whose files a function writes (``setup(tmp_path)``) before the files of the row."""
    return Cli(case.id, case.args, case.expect, {**case.files, "__setup__": setup}, case.names)


LOCK = json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started_utc": "2026-01-01T00:00:00+00:00"})

OTHER_CLI_CASES = [
    Cli("run-out-locked", ("run", "{tmp}/r.yaml", "--out", "{tmp}/saved", "--no-progress"),
        f"saved: another run is writing here (pid {os.getppid()} on host {socket.gethostname()}",
        {"r.yaml": "model: zoo:lenet5\n", f"saved/{LOCK_FILE}": LOCK, "saved/report.json": "{}"}),
    # read-only --out: root ignores permission bits here, so a folder under a regular file stands in
    Cli("run-out-unwritable", ("run", "{tmp}/r.yaml", "--out", "{tmp}/a_file/out", "--no-progress"),
        "a_file/out: cannot create the output directory (Not a directory)",
        {"r.yaml": "model: zoo:lenet5\n", "a_file": "not a folder"}),
    Cli("run-out-is-a-file", ("run", "{tmp}/r.yaml", "--out", "{tmp}/a_file", "--no-progress"),
        "a_file: output path exists and is not a directory", {"r.yaml": "model: zoo:lenet5\n", "a_file": "x"}),
    Cli("profile-missing-path", ("profile", "{tmp}/missing_model"), "missing_model: no such file or directory"),
    Cli("profile-missing-tsc", ("profile", "{tmp}/model.tsc"), "model.tsc: no such file or directory"),
    Cli("recipe-relative-data-path", ("validate", "{tmp}/sub/r.yaml"), "sub/missing.npz' does not exist",
        {"sub/r.yaml": "model: zoo:lenet5\ndata: npz:missing.npz\n"}),
    _setup_then_cli(_user_class_checkpoint, recipe("recipe-checkpoint-user-class", "model: {checkpoint: ckpt}\n",
                                                  "trust_code")),
    _setup_then_cli(lambda t: (t / "bad.npz").write_bytes(b"PK\x03\x04 not a zip"),
                    recipe("run-npz-not-an-archive", "model: zoo:lenet5\ndata: npz:bad.npz\n",
                           "bad.npz: not an .npz archive",
                           "run", None)),
    _setup_then_cli(lambda t: _npz(t, "big.npz", np.full((4, 1, 4, 4), 1e300)),
                    recipe("run-npz-float32-overflow", "model: zoo:lenet5\ndata: npz:big.npz\n",
                           "big.npz: x holds values up to 1e+300, beyond float32's range",
                           "run", None)),
    _setup_then_cli(_images, recipe("run-folder-mixed-channels", "model: zoo:lenet5\n"
                                    "data: {name: folder:imgs, image_size: 28}\n", "/b/1.png is colour", "run", None)),
]

OTHER_API_CASES = [
    Api("saved-weight-bit-flipped", lambda t: torchslim.load(t / "saved"),
        "model.safetensors: bytes do not match the sha256 digest in spec.json", setup=_flip_bit),
    Api("saved-spec-edited", lambda t: torchslim.load(t / "saved"), "content does not match its sha256 digest",
        setup=_edit_raw_spec),
    Api("saved-spec-dunder-class", lambda t: torchslim.load(t / "saved"),
        "module 'features.0': attribute '__class__' is not an attribute of Conv2d",
        setup=_edit(_set_attr("features.0", "__class__", "x"))),
    Api("saved-spec-dunder-dict", lambda t: torchslim.load(t / "saved"), "attribute '__dict__' may not be set",
        setup=_edit(_set_attr("", "__dict__", {}))),
    Api("saved-spec-forward", lambda t: torchslim.load(t / "saved"), "attribute 'forward' would replace",
        setup=_edit(_set_attr("", "forward", 0))),
    Api("saved-spec-dtype", lambda t: torchslim.load(t / "saved"), "dtype '__class__' is not a torch dtype",
        setup=_edit(lambda s: s["tensors"]["features.0.weight"].update(dtype="__class__"))),
    Api("saved-spec-out-channels-7", lambda t: torchslim.load(t / "saved"),
        "module 'features.0': out_channels 7 contradicts weight shape [6, 1, 5, 5]",
        setup=_edit(_set_attr("features.0", "out_channels", 7))),
    Api("save-refuses-hooked-model", lambda t: torchslim.save(_hooked(), t / "saved"), "has forward hooks",
        setup=_saved),
    Api("fit-label-out-of-range", lambda t: _fit(X, Y + 1), "fit: label 3 is outside the model's 3 classes"),
    Api("fit-labels-float", lambda t: _fit(X, Y.float()), "fit: labels are float32"),
    Api("fit-loss-nan", lambda t: _fit(X * math.nan, Y), "fit: loss is nan at epoch 1, step 1"),
    Api("fit-lr-nan", lambda t: _fit(X, Y, lr=math.nan), "fit: lr must be a finite number"),
]
