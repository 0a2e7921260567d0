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

Provenance: every file says which exporter wrote it, in its ``metadata_props``
(``torchslim.exporter``: torchscript | dynamo; ``torchslim.exporter_fallback``: why the
TorchScript exporter failed, when it did; ``torchslim.version``; ``torchslim.preprocessing``:
the input's pixel scale, mean, std and layout as JSON, when given), read back with
:func:`onnx_provenance` and :func:`onnx_preprocessing`. Only a ``RuntimeError`` of the
TorchScript exporter (what it raises for an unsupported op or a failed trace,
``torch.onnx.OnnxExporterError`` included) falls back; anything else is a bug and propagates.

A module class with a ``rewrite_onnx`` static method (the int8 layers) gets it applied to the
exported graph before the write. Hand-written: the atomic write (temp file in the target folder + ``os.replace``) and the
silencing of the exporters' warnings, prints and C++ messages (fd-level redirect).
onnx and onnxruntime are imported on first use only, so importing torchslim loads neither.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.atomic import current_umask
from torchslim.core.context import as_input_tuple
from torchslim.core.modules import evaluating
from torchslim.errors import UserError
from torchslim.profiler.analyze import Inputs, run_checked
from torchslim.profiler.preprocessing import WithPreprocessing, check_preprocessing

OPSET = 17
_META_PREFIX = "torchslim."  # metadata_props keys written by export_onnx


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
    preprocessing: Mapping[str, Any] | None = None,
    include_preprocessing: bool = False,
) -> Path:
    """Export ``model`` (in eval mode) to one ONNX file at ``path``; returns the path.

    With ``dynamic_batch`` dim 0 of every input and output is symbolic ("batch"), so one
    file serves any batch size. The write is atomic: a reader sees the old file or the
    complete new one; its metadata names the exporter that wrote it (:func:`onnx_provenance`).
    The exporters' chatter is suppressed; on failure it is attached to the exception as a note.

    ``preprocessing`` (:func:`~torchslim.profiler.preprocessing.data_preprocessing`: pixel_scale,
    mean, std, layout NCHW) is recorded in the file's metadata (:func:`onnx_preprocessing`). With
    ``include_preprocessing`` it is also folded into the graph: the file takes raw pixels (e.g.
    0..255, float32, NCHW) and ``example_inputs`` are the standardised inputs the model takes.
    """
    inputs = as_input_tuple(example_inputs)
    stamp: dict[str, str] = {}
    if preprocessing is not None or include_preprocessing:
        if preprocessing is None:
            raise UserError("export_onnx: include_preprocessing=True needs the preprocessing constants "
                            "(preprocessing=data_preprocessing(data))")
        pre = check_preprocessing(preprocessing)
        stamp["preprocessing"] = json.dumps({**pre, "in_graph": include_preprocessing}, sort_keys=True)
        if include_preprocessing:
            model = WithPreprocessing(model, pre)
            inputs = (_raw(inputs[0], pre), *inputs[1:])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; a deployed file is readable as others are
    log = io.StringIO()
    try:
        with evaluating(model):
            with torch.no_grad():
                names = _names(inputs, run_checked(model, inputs))
            with _silenced(log):
                provenance = _export_either(model, inputs, tmp, names, dynamic_batch)
        # Graph rewrites a module class asks for (int8 modules: torchslim.quant.onnx_rewrite).
        rewrites = {type(m).rewrite_onnx for m in model.modules() if hasattr(type(m), "rewrite_onnx")}
        _stamp(tmp, {**provenance, **stamp}, rewrites)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if log.getvalue().strip():
            error.add_note("exporter output:\n" + log.getvalue()[-4000:])
        raise
    return path


def _raw(standardised: torch.Tensor, pre: Mapping[str, Any]) -> torch.Tensor:
    """Raw pixels that standardise to ``standardised`` (an example input for tracing)."""
    shape = (1, -1) + (1,) * (standardised.dim() - 2)
    mean, std = (torch.tensor(pre[k], dtype=standardised.dtype).view(shape) for k in ("mean", "std"))
    return (standardised * std + mean) / pre["pixel_scale"]


def _export_either(model: nn.Module, inputs: tuple[Any, ...], path: str, names: tuple[list[str], list[str]],
                   dynamic_batch: bool) -> dict[str, str]:
    """The TorchScript exporter, or the dynamo one if it raises a RuntimeError; which one wrote ``path``."""
    try:
        _export_torchscript(model, inputs, path, names, dynamic_batch)
        return {"exporter": "torchscript"}
    except RuntimeError as exc:  # OnnxExporterError, unsupported op, failed trace
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        try:
            _export_dynamo(model, inputs, path, names, dynamic_batch)
        except Exception as dynamo_exc:
            dynamo_exc.add_note(f"the TorchScript exporter failed first ({reason})")
            raise dynamo_exc from exc
    return {"exporter": "dynamo", "exporter_fallback": reason}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _stamp(path: str, provenance: dict[str, str], rewrites: Iterable[Callable[[Any], Any]] = ()) -> None:
    """Apply ``rewrites`` (each takes the ``onnx.ModelProto`` and edits it in place), then write
    ``provenance`` and the torchslim version into the file's ``metadata_props``."""
    import onnx

    from torchslim import __version__

    proto = onnx.load(path, load_external_data=False)
    for rewrite in rewrites:
        rewrite(proto)
    entries = {**provenance, "version": __version__}
    kept = [p for p in proto.metadata_props if not p.key.startswith(_META_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        proto.metadata_props.add(key=_META_PREFIX + key, value=value)
    onnx.save(proto, path)


def onnx_provenance(path: str | os.PathLike[str]) -> dict[str, str]:
    """What :func:`export_onnx` recorded in the file at ``path``: ``exporter`` (torchscript |
    dynamo), ``exporter_fallback`` (why TorchScript failed, if it did), ``version``; {} for a
    file written by something else."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key.removeprefix(_META_PREFIX): p.value for p in proto.metadata_props if p.key.startswith(_META_PREFIX)}


def onnx_preprocessing(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The preprocessing :func:`export_onnx` recorded in the file (pixel_scale, mean, std, layout,
    ..., and ``in_graph``: True when the file takes raw pixels), or None when none was recorded."""
    text = onnx_provenance(path).get("preprocessing")
    return None if text is None else json.loads(text)


def onnx_session(path_or_bytes: str | os.PathLike[str] | bytes, threads: int | None = None,
                 providers: list[Any] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` with a fixed thread count, on ``providers``
    (None: the CPU provider; ``profiler.latency.ort_providers`` picks CUDA for a GPU model).

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
    return ort.InferenceSession(model, sess_options=options, providers=providers or ["CPUExecutionProvider"])
