"""``torchslim.save(model, dir)`` / ``torchslim.load(dir)`` / ``read_spec(dir)``.

A saved model is a directory with two files:
- ``spec.json``: format name, schema version, the model's origin (zoo builder + kwargs, or
  None for a model built by the user's own code), the module tree (see
  :mod:`torchslim.serialize.spec`), every state-dict tensor's shape, dtype and kind, tied
  parameters, free-form ``metadata``, and the sha256 digests of the weights and of the spec
  itself (:mod:`torchslim.serialize.verify`);
- ``model.safetensors``: the weights (shared tensors stored once, via safetensors' own
  ``save_model``/``load_model``).

``save`` writes the directory next to its final name, loads it back there and compares it
with the model (structure, attributes, every tensor's bytes), then renames it into place: an
interrupted or refused save leaves the old directory as it was. Schema 1 directories (before
digests and user classes) still load, unverified.
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
from torchslim.serialize.attrs import parse_dtype
from torchslim.serialize.classes import is_user_key, save_problem
from torchslim.serialize.spec import apply_tree, describe, tensor_kinds
from torchslim.serialize.verify import difference, file_sha256, shared_module, spec_sha256, tied_parameters

__all__ = ["load", "read_spec", "save", "tied_parameters"]

FORMAT = "torchslim.model"
SCHEMA_VERSION = 2
SPEC_FILE = "spec.json"
WEIGHTS_FILE = "model.safetensors"
_KINDS = ("parameter", "frozen", "buffer")


def _origin(model: nn.Module) -> dict[str, Any] | None:
    origin = getattr(model, "_torchslim_origin", None)
    if origin is not None and not (isinstance(origin, dict) and isinstance(origin.get("name"), str)):
        raise UserError(f"cannot save {type(model).__name__}: its _torchslim_origin is not a zoo origin dict")
    return origin


def _check_savable(model: nn.Module) -> None:
    """What can be refused before anything is written: classes, shared modules."""
    shared = shared_module(model)
    if shared:
        raise UserError(f"cannot save: module '{shared[1]}' is the same module object as '{shared[0]}' "
                        "(shared submodules are not supported; tie parameters instead)")
    for name, module in model.named_modules():
        problem = save_problem(type(module))
        if problem:
            raise UserError(f"cannot save: module '{name or type(model).__name__}': {problem}")


def _spec(model: nn.Module, metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise UserError(f"save: metadata must be a dict, got {type(metadata).__name__}")
    try:
        metadata = json.loads(json.dumps(metadata))
    except (TypeError, ValueError) as exc:
        raise UserError(f"save: metadata is not JSON-serialisable ({exc})") from None
    from torchslim import __version__

    kinds = tensor_kinds(model)
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "torch_version": torch.__version__,
        "torchslim_version": __version__,
        "origin": _origin(model),
        "modules": describe(model),
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch."), "kind": kinds[k]}
                    for k, v in model.state_dict().items()},
        "tied": tied_parameters(model),
        "metadata": metadata,
    }


def save(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to directory ``path`` (spec.json + model.safetensors), verified, atomically.

    ``metadata``: a JSON-serialisable dict kept as ``spec["metadata"]`` (see :func:`read_spec`).
    Classes outside torch and torchslim are recorded by import path; they must be importable
    (not defined in ``__main__`` or inside a function).
    """
    from safetensors.torch import save_model

    path = Path(path).resolve()
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or (path / SPEC_FILE).is_file())):
        raise UserError(f"{path}: exists and is not a saved torchslim model; choose a new or empty directory")
    _check_savable(model)
    spec = _spec(model, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
    try:
        save_model(model, str(tmp / WEIGHTS_FILE))
        os.chmod(tmp / WEIGHTS_FILE, 0o666 & ~current_umask())
        spec["digest"] = {"algorithm": "sha256", "weights": file_sha256(tmp / WEIGHTS_FILE)}
        spec["digest"]["spec"] = spec_sha256(spec)
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=1), encoding="utf-8")
        try:
            problem = difference(model, load(tmp, trust_code=True))
        except UserError as exc:
            problem = str(exc).removeprefix(f"{tmp / SPEC_FILE}: ").removeprefix(f"{tmp}: ")
        if problem:
            raise UserError(f"cannot save {path}: {problem}; nothing was written")
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


def _tie(model: nn.Module, groups: list[list[str]]) -> None:
    for first, *others in groups:
        shared = model.get_parameter(first)
        for name in others:
            owner, _, pname = name.rpartition(".")
            setattr(model.get_submodule(owner), pname, shared)


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The verified ``spec.json`` of a saved model; ``spec["metadata"]`` is ``{}`` when none was saved."""
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
    version = spec.get("schema_version")
    if version not in (1, SCHEMA_VERSION):
        raise UserError(f"{spec_file}: schema_version {version!r} is not supported "
                        f"(this torchslim reads 1 and {SCHEMA_VERSION})")
    if version == SCHEMA_VERSION:
        digest = spec.get("digest")
        if not isinstance(digest, dict) or not isinstance(digest.get("weights"), str):
            raise UserError(f"{spec_file}: missing field 'digest'")
        if digest.get("spec") != spec_sha256(spec):
            raise UserError(f"{spec_file}: content does not match its sha256 digest (the file was changed after saving)")
    missing = [k for k in ("origin", "modules", "tensors") if k not in spec]
    if missing:
        raise UserError(f"{spec_file}: missing field '{missing[0]}'")
    if not isinstance(spec.get("metadata", {}), dict):
        raise UserError(f"{spec_file}: field 'metadata' is not a mapping")
    spec.setdefault("metadata", {})
    return spec


def _tensors(spec: dict[str, Any], where: Path) -> dict[str, tuple[list[int], torch.dtype, str | None]]:
    tensors = spec["tensors"]
    if not isinstance(tensors, dict):
        raise UserError(f"{where}: field 'tensors' is not a mapping")
    out = {}
    for name, entry in tensors.items():
        at = f"{where}: tensor '{name}'"
        if not isinstance(entry, dict):
            raise UserError(f"{at}: not a mapping")
        shape, kind = entry.get("shape"), entry.get("kind")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise UserError(f"{at}: shape {shape!r} is not a list of sizes")
        if kind is not None and kind not in _KINDS:
            raise UserError(f"{at}: kind {kind!r} is not one of {', '.join(_KINDS)}")
        out[name] = (shape, parse_dtype(entry.get("dtype"), at), kind)
    return out


def _user_classes(spec: dict[str, Any]) -> list[str]:
    modules = spec["modules"] if isinstance(spec["modules"], list) else []
    return sorted({e["class"] for e in modules if isinstance(e, dict) and isinstance(e.get("class"), str)
                   and is_user_key(e["class"])})


def load(path: str | os.PathLike, *, trust_code: bool = False) -> nn.Module:
    """Rebuild a model saved by :func:`save`; returns it in eval mode.

    A spec naming classes outside torch and torchslim imports them (running their modules'
    code) only with ``trust_code=True``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from torchslim.core.registry import techniques
    from torchslim.zoo import create_model

    path = Path(path)
    spec = read_spec(path)
    spec_file = path / SPEC_FILE
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"{path}: missing {WEIGHTS_FILE}")
    if spec["schema_version"] >= 2 and file_sha256(weights) != spec["digest"]["weights"]:
        raise UserError(f"{weights}: bytes do not match the sha256 digest in {SPEC_FILE} (the file was changed after saving)")
    user = _user_classes(spec)
    if user and not trust_code:
        raise UserError(
            f"{path}: the model's classes come from code outside torch and torchslim ({', '.join(user)}); "
            "importing them runs that code: if you trust it, load with torchslim.load(path, trust_code=True), "
            "or in a recipe model: {checkpoint: DIR, trust_code: true}")
    techniques()  # technique families allow their module classes (quantized layers...) on import
    origin = spec["origin"]
    if origin is None and spec["schema_version"] == 1:
        raise UserError(f"{spec_file}: field 'origin' is empty")
    if origin is not None and not (isinstance(origin, dict) and isinstance(origin.get("name"), str)
                                   and isinstance(origin.get("kwargs", {}), dict)):
        raise UserError(f"{spec_file}: field 'origin' is not a zoo origin (name and kwargs)")
    tensors = _tensors(spec, spec_file)
    model = create_model(origin["name"], **origin.get("kwargs", {})) if origin is not None else None
    try:
        model = apply_tree(model, spec["modules"], tensors, trust_code=trust_code)
        _tie(model, spec.get("tied", []))
    except UserError as exc:
        raise UserError(f"{spec_file}: {exc}") from None
    if origin is not None:
        model._torchslim_origin = origin
    try:
        load_model(model, str(weights), strict=True)
    except (SafetensorError, RuntimeError, KeyError, ValueError, OSError) as exc:  # a bad or mismatched file
        raise UserError(f"{weights}: weights do not match {SPEC_FILE} ({str(exc).splitlines()[0]})") from exc
    return model.eval()
