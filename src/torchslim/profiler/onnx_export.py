"""ONNX export (PyTorch's exporters) and ONNX Runtime sessions with fixed threads.

Exporter choice, measured with torch 2.13 on 2 CPU cores: the TorchScript exporter
(``torch.onnx.export(..., dynamo=False)``, opset 17) exports ResNet-50 in ~0.7 s and a
small ViT using ``F.scaled_dot_product_attention`` in ~0.1 s, with a dynamic batch that
serves batch 1 and 3 within 1e-7 of eager. The torch.export-based exporter
(``dynamo=True``, needs onnxscript) takes ~7 s and ~1-4 s for the same models, and with
a batch-1 example it specialises the batch of a ViT (``cls.expand(x.shape[0], ...)``)
to 1 despite ``dynamic_shapes``. So the TorchScript exporter is the default; the dynamo
exporter is the fallback when it fails (or is removed in a later torch), given a batch-2
example so 0/1 specialisation cannot pin the batch.

Hand-written: the atomic write (temp file in the target folder + ``os.replace``) and the
silencing of the exporters' warnings, prints and C++ messages (fd-level redirect).
onnxruntime is imported on first use only, so importing torchslim does not load it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.context import as_input_tuple
from torchslim.core.modules import evaluating
from torchslim.profiler.analyze import Inputs, run_checked

OPSET = 17


@contextlib.contextmanager
def _silenced(captured: io.StringIO) -> Iterator[None]:
    """Send Python warnings, prints and anything written to fds 1 and 2 (C++ messages,
    logging handlers bound to the original streams) into ``captured``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(captured),
                contextlib.redirect_stderr(captured),
            ):
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.write(sink.read().decode(errors="replace"))


def _names(inputs: tuple[Any, ...], outputs: Any) -> tuple[list[str], list[str]]:
    n_in = sum(isinstance(x, torch.Tensor) for x in inputs)
    flat, _ = torch.utils._pytree.tree_flatten(outputs)
    n_out = sum(isinstance(x, torch.Tensor) for x in flat)
    in_names = ["input"] if n_in == 1 else [f"input_{i}" for i in range(n_in)]
    out_names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
    return in_names, out_names


def _export_torchscript(
    model: nn.Module,
    inputs: tuple[Any, ...],
    path: str,
    names: tuple[list[str], list[str]],
    dynamic_batch: bool,
) -> None:
    in_names, out_names = names
    axes = {name: {0: "batch"} for name in in_names + out_names} if dynamic_batch else None
    torch.onnx.export(
        model,
        inputs,
        path,
        dynamo=False,
        opset_version=OPSET,
        input_names=in_names,
        output_names=out_names,
        dynamic_axes=axes,
        do_constant_folding=True,
    )


def _export_dynamo(
    model: nn.Module,
    inputs: tuple[Any, ...],
    path: str,
    names: tuple[list[str], list[str]],
    dynamic_batch: bool,
) -> None:
    in_names, out_names = names
    shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        inputs = tuple(
            torch.cat([x, x]) if isinstance(x, torch.Tensor) and x.shape[0] == 1 else x
            for x in inputs
        )
        shapes = tuple({0: batch} if isinstance(x, torch.Tensor) else None for x in inputs)
    torch.onnx.export(
        model,
        inputs,
        path,
        dynamo=True,
        opset_version=max(OPSET, 18),
        input_names=in_names,
        output_names=out_names,
        dynamic_shapes=shapes,
        external_data=False,
    )


def export_onnx(
    model: nn.Module,
    example_inputs: Inputs,
    path: str | os.PathLike[str],
    *,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` (in eval mode) to one ONNX file at ``path``; returns the path.

    With ``dynamic_batch`` dim 0 of every input and output is symbolic ("batch"), so one
    file serves any batch size. The write is atomic: a reader sees the old file or the
    complete new one. The exporters' chatter is suppressed; on failure it is attached to
    the exception as a note.
    """
    inputs = as_input_tuple(example_inputs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    log = io.StringIO()
    try:
        with evaluating(model):
            with torch.no_grad():
                names = _names(inputs, run_checked(model, inputs))
            with _silenced(log):
                try:
                    _export_torchscript(model, inputs, tmp, names, dynamic_batch)
                except Exception:  # noqa: BLE001 - any failure: try the other exporter
                    _export_dynamo(model, inputs, tmp, names, dynamic_batch)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if log.getvalue().strip():
            error.add_note("exporter output:\n" + log.getvalue()[-4000:])
        raise
    return path


def onnx_session(path_or_bytes: str | os.PathLike[str] | bytes, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU provider with a fixed thread count.

    ``threads`` sets ``intra_op_num_threads`` (None: ONNX Runtime's default, one per
    physical core); ops run sequentially (``inter_op_num_threads=1``) with all graph
    optimisations on.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    model = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
