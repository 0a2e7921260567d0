"""``load_data(spec)``: one string names any data source (CLI flags and recipes use it)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torchslim.data.bundled import list_datasets, load_dataset
from torchslim.data.folder import from_image_folder
from torchslim.data.npz import from_npz
from torchslim.data.splits import DataSplits
from torchslim.errors import UserError


def _call(source: Callable[..., DataSplits], spec: str, target: str, kwargs: dict) -> DataSplits:
    options = [p for p in inspect.signature(source).parameters if p not in ("name", "path")]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise UserError(
            f"data spec {spec!r} does not take {', '.join(unknown)}; options: {', '.join(options)}"
        )
    return source(target, **kwargs)


def load_data(spec: str, **kwargs: Any) -> DataSplits:
    """Dispatch ``"mnist5k"`` / ``"data:digits"`` / ``"npz:/path/file.npz"`` / ``"folder:/path"``.

    ``kwargs`` go to :func:`load_dataset`, :func:`from_npz` or :func:`from_image_folder`
    (which needs ``image_size``).
    """
    if not isinstance(spec, str) or not spec:
        raise UserError(f"data spec must be a non-empty string, got {spec!r}")
    kind, sep, rest = spec.partition(":")
    if sep and kind == "npz":
        return _call(from_npz, spec, rest, kwargs)
    if sep and kind == "folder":
        if kwargs.get("image_size") is None:
            raise UserError(f"data spec {spec!r} needs image_size (images are resized to S x S)")
        return _call(from_image_folder, spec, rest, kwargs)
    if not sep or kind == "data":
        return _call(load_dataset, spec, spec, kwargs)
    raise UserError(
        f"unknown data spec {spec!r}; use one of {', '.join(list_datasets())}, "
        "npz:/path/file.npz or folder:/path"
    )
