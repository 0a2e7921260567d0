"""Test helpers: compare two models exactly; edit a saved spec.json and re-digest it (to test the
checks that sit behind the digest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.serialize.verify import spec_sha256


def edit_spec(folder: Path, change: Callable[[dict[str, Any]], object]) -> None:
    spec = json.loads((folder / "spec.json").read_text())
    change(spec)
    if isinstance(spec.get("digest"), dict):
        spec["digest"]["spec"] = spec_sha256(spec)
    (folder / "spec.json").write_text(json.dumps(spec))


def module_entry(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in spec["modules"] if e["name"] == name)


def assert_same(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    """Same state-dict keys, dtypes and values, same buffers, bit-identical outputs on ``x``."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key
    assert {n for n, _ in a.named_buffers()} == {n for n, _ in b.named_buffers()}
    assert torch.equal(a.eval()(x), b.eval()(x))
