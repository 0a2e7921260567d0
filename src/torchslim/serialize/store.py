"""``torchslim.save(model, dir)`` / ``torchslim.load(dir)``.

A saved model is a directory with two files:
- ``spec.json``: format name, schema version, the model's origin (zoo builder + kwargs),
  the module tree (see :mod:`torchslim.serialize.spec`) and every state-dict tensor's shape
  and dtype;
- ``model.safetensors``: the weights (shared tensors stored once, via safetensors' own
  ``save_model``/``load_model``).

The directory is written next to its final name and renamed into place, so an interrupted
save leaves either the old directory or the new one, never a half-written mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.atomic import current_umask
from torchslim.errors import UserError
from torchslim.serialize.spec import apply_tree, describe

FORMAT = "torchslim.model"
SCHEMA_VERSION = 1
SPEC_FILE = "spec.json"
WEIGHTS_FILE = "model.safetensors"


def _origin(model: nn.Module) -> dict[str, Any]:
    origin = getattr(model, "_torchslim_origin", None)
    if not isinstance(origin, dict) or "name" not in origin:
        raise UserError(
            f"cannot save {type(model).__name__}: it has no architecture origin; build it with "
            "torchslim.zoo.create_model or register a builder with torchslim.zoo.register_model"
        )
    return origin


def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` to directory ``path`` (spec.json + model.safetensors), atomically."""
    from safetensors.torch import save_model

    path = Path(path).resolve()
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or (path / SPEC_FILE).is_file())):
        raise UserError(f"{path}: exists and is not a saved torchslim model; choose a new or empty directory")
    spec = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "torch_version": torch.__version__,
        "origin": _origin(model),
        "modules": describe(model),
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                    for k, v in model.state_dict().items()},
        "tied": tied_parameters(model),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
    try:
        save_model(model, str(tmp / WEIGHTS_FILE))
        os.chmod(tmp / WEIGHTS_FILE, 0o666 & ~current_umask())
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=1), encoding="utf-8")
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def tied_parameters(model: nn.Module) -> list[list[str]]:
    """Groups of parameter names that are one shared tensor (e.g. tied embeddings)."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _tie(model: nn.Module, groups: list[list[str]]) -> None:
    for first, *others in groups:
        shared = model.get_parameter(first)
        for name in others:
            owner, _, pname = name.rpartition(".")
            setattr(model.get_submodule(owner), pname, shared)


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    spec_file = path / SPEC_FILE
    if not spec_file.is_file():
        raise UserError(f"{path}: not a saved torchslim model (no {SPEC_FILE})")
    try:
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{spec_file}: unreadable spec ({exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise UserError(f"{spec_file}: not a torchslim model spec (format field is not '{FORMAT}')")
    missing = [k for k in ("origin", "modules", "tensors") if k not in spec]
    if missing:
        raise UserError(f"{spec_file}: missing field '{missing[0]}'")
    if spec.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{spec_file}: schema_version {spec.get('schema_version')!r} is not supported "
                        f"(this torchslim reads {SCHEMA_VERSION})")
    return spec


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild a model saved by :func:`save`; returns it in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from torchslim.core.registry import techniques
    from torchslim.zoo import create_model

    path = Path(path)
    spec = read_spec(path)
    techniques()  # technique families allow their module classes (quantized layers...) on import
    origin = spec["origin"]
    model = create_model(origin["name"], **origin.get("kwargs", {}))
    tensors = {k: (v["shape"], getattr(torch, v["dtype"])) for k, v in spec["tensors"].items()}
    apply_tree(model, spec["modules"], tensors)
    _tie(model, spec.get("tied", []))
    model._torchslim_origin = origin
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"{path}: missing {WEIGHTS_FILE}")
    try:
        load_model(model, str(weights), strict=True)
    except (SafetensorError, RuntimeError, KeyError, ValueError, OSError) as exc:  # a bad or mismatched file
        raise UserError(f"{weights}: weights do not match {SPEC_FILE} ({str(exc).splitlines()[0]})") from exc
    return model.eval()
