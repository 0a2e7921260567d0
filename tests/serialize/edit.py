"""Edit a saved spec.json and re-digest it, to test the checks that sit behind the digest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torchslim.serialize.verify import spec_sha256


def edit_spec(folder: Path, change: Callable[[dict[str, Any]], object]) -> None:
    spec = json.loads((folder / "spec.json").read_text())
    change(spec)
    if isinstance(spec.get("digest"), dict):
        spec["digest"]["spec"] = spec_sha256(spec)
    (folder / "spec.json").write_text(json.dumps(spec))


def module_entry(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in spec["modules"] if e["name"] == name)
