"""``codec.encode``: write the model as a Deep Compression file (stage 3: sparse relative
indices, per-layer codebooks, entropy-coded streams; Han et al. 2016, s. 4) and report the
per-layer table.

The step writes ``model.tsc`` (the format: :mod:`torchslim.codec.container`) to ``path`` or
the run's output directory, reads it back, checks every tensor is bit-identical, and hands
the *decoded* model on, so the accuracy recorded after this step is that of the model rebuilt from the
file. The per-layer table (weights %, bits, original and compressed bytes, rate, and each
stream's bits per non-zero against its entropy) goes into the step's details (report.json)
and, as Markdown, next to the file (``model.md``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from torchslim.codec.container import decode_model, decode_state_dict, encode_bytes, write_model
from torchslim.codec.table import summarize
from torchslim.codec.tensor import to_bits
from torchslim.core.atomic import write_text_atomic
from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.errors import UserError


@dataclass(frozen=True)
class EncodeConfig(TechniqueConfig):
    """``coder``: entropy coder of every stream (``auto``: smallest of packed/huffman/rans).
    ``index_bits`` / ``conv_index_bits``: fixed relative-index widths for Linear / conv layers
    (the paper: 5 and 4); None chooses the smallest per layer."""

    path: str | None = None
    coder: Literal["auto", "huffman", "rans", "packed"] = "auto"
    index_bits: int | None = None
    conv_index_bits: int | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        for b in (self.index_bits, self.conv_index_bits):
            if b is not None and not 1 <= b <= 16:
                raise ValueError(f"fields 'index_bits'/'conv_index_bits' must be in 1..16, got {b}")
        if self.path:
            problem = file_path_problem(Path(self.path))
            if problem:
                raise ValueError(f"field 'path': {problem}")


def file_path_problem(path: Path) -> str | None:
    """Why a file cannot be written at ``path`` (a directory there, a file where a parent
    folder should be, an unwritable folder), or None."""
    if path.is_dir():
        return f"'{path}' is a directory; name the file, e.g. '{path / 'model.tsc'}'"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"'{parent}' is a file, not a folder, so '{path}' cannot be written"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder '{parent}' is not writable, so '{path}' cannot be written"
    return None


def dense_fp32_bytes(model: nn.Module) -> int:
    """4 bytes per parameter element: the uncompressed float32 weights the paper compares against."""
    return 4 * sum(p.numel() for p in model.parameters())


def _widths(model: nn.Module, config: EncodeConfig) -> dict[str, int]:
    widths = {}
    for name, m in model.named_modules():
        conv = isinstance(m, nn.modules.conv._ConvNd)
        width = config.conv_index_bits if conv and config.conv_index_bits else config.index_bits
        if width is not None and isinstance(getattr(m, "weight", None), torch.Tensor):
            widths[name] = width
    return widths


@register_technique("codec.encode", EncodeConfig)
def encode_(model: nn.Module, config: EncodeConfig, ctx: Context) -> HandlerResult:
    """Write the compressed .tsc file (sparse + codebook + Huffman/rANS) and the per-layer table."""
    warnings: list[str] = []
    path = Path(config.path) if config.path else (ctx.out_dir / "model.tsc" if ctx.out_dir else None)
    problem = None if path is None else file_path_problem(path)
    if problem:  # checked again here: the file system may have changed since the config was made
        raise UserError(f"field 'path': {problem}" if config.path else f"output file: {problem}")
    kwargs = dict(coder=config.coder, index_bits=_widths(model, config))
    start = time.perf_counter()
    if path is None:
        _, stats, overhead = encode_bytes(model, **kwargs)
        warnings.append("no 'path' and no output directory: sizes computed, file not written")
    else:
        try:
            path, stats, overhead = write_model(model, path, **kwargs)
        except OSError as exc:  # what no check before can foresee: a special file system, a full disk
            what = "field 'path'" if config.path else "output file"
            raise UserError(f"{what}: cannot write '{path}' "
                            f"({exc.strerror or exc})") from None
    encode_seconds = time.perf_counter() - start
    summary = summarize(stats, overhead, dense_fp32_bytes(model))
    summary.update(path=None if path is None else str(path), encode_seconds=round(encode_seconds, 3))
    result = model
    if path is not None:
        write_text_atomic(path.with_suffix(".md"), f"# {path.name}\n\n" + summary["markdown"])
        start = time.perf_counter()
        _, state = decode_state_dict(path)
        summary["decode_seconds"] = round(time.perf_counter() - start, 3)
        if summary["file_bytes"] != path.stat().st_size:
            raise RuntimeError(f"{path}: table says {summary['file_bytes']} bytes, file has {path.stat().st_size}")
        if config.verify:
            original = model.state_dict()
            bad = [k for k, v in original.items() if not _bit_equal(v, state[k])]
            if bad:
                raise RuntimeError(f"{path}: decoded tensors differ from the model: {bad[:3]}")
            summary["verified_bit_exact"] = True
        if getattr(model, "_torchslim_origin", None) is not None:
            result = decode_model(path)
        else:
            warnings.append("model has no zoo origin: the file stores weights only (decode_state_dict)")
    return HandlerResult(result, warnings, summary)


def _bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(to_bits(a), to_bits(b))
