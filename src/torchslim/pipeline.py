"""``torchslim.compress``: apply technique steps in order, measuring before and after each.

The caller's model is deep-copied once; handlers then mutate that copy in place (a copy
per step would double peak memory on large models).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.config import TechniqueConfig, nested_sections
from torchslim.core.context import Context, as_input_tuple
from torchslim.core.device import resolve_device
from torchslim.core.digest import data_digest, model_digest
from torchslim.core.limits import check_limits
from torchslim.core.numerics import output_error
from torchslim.core.outdir import OutDir
from torchslim.core.progress import Progress, format_seconds, note
from torchslim.core.registry import config_for, techniques
from torchslim.core.select import check_layer_names
from torchslim.data.access import as_splits, eval_split, example_split, first_inputs
from torchslim.errors import UserError
from torchslim.profiler.preprocessing import data_preprocessing
from torchslim.profiler.snapshot import MeasureConfig, run_eval, snapshot
from torchslim.report.schema import RunReport, StepReport
from torchslim.serialize.classes import class_key, is_user_key
from torchslim.train.config import TrainConfig
from torchslim.train.evaluate import model_device

StepLike = TechniqueConfig | tuple[str, dict[str, Any]] | dict[str, Any] | str


@dataclass
class CompressResult:
    model: nn.Module
    report: RunReport


def resolve_step(step: StepLike, where: str = "") -> TechniqueConfig:
    """A config instance, a technique name, ``(name, fields)``, or ``{"technique": name, **fields}``."""
    if isinstance(step, TechniqueConfig):
        return step
    if isinstance(step, str):
        name, fields = step, {}
    elif isinstance(step, tuple) and len(step) == 2:
        name, fields = step
    elif isinstance(step, dict) and "technique" in step:
        fields = dict(step)
        name = fields.pop("technique")
    else:
        raise UserError(f"{where or 'step'}: expected a technique config, name, (name, fields) or mapping")
    return config_for(name, fields, where)


def resolve_steps(steps: Sequence[StepLike], has_data: bool, *, model: nn.Module | None = None,
                  has_eval: bool | None = None, measure: MeasureConfig | None = None,
                  allow_large: bool = False) -> list[TechniqueConfig]:
    """Every step as a validated config, before any work (see :func:`resolve_step`), checked
    as a recipe's steps are: data where a step uses it (:func:`check_steps`), the size bounds of
    :mod:`torchslim.core.limits` on the steps and ``measure`` unless ``allow_large``, and every
    layer name against ``model`` (:func:`check_step_layer_names`)."""
    single_pair = isinstance(steps, tuple) and len(steps) == 2 and isinstance(steps[0], str)
    if isinstance(steps, (str, dict, TechniqueConfig)) or single_pair:
        raise UserError("steps must be a list of steps, e.g. ['fold.bn'] or [('prune.channels', {...})]")
    configs = [resolve_step(s, f"step {i + 1}") for i, s in enumerate(steps)]
    check_steps(configs, has_data, allow_large=allow_large, has_eval=has_eval)
    if measure is not None and not allow_large:
        check_limits(measure, "measure: ", "pass allow_large=True")
    if model is not None:
        check_step_layer_names(model, configs)
    return configs


def check_training_data(configs: Sequence[TechniqueConfig], has_data: bool, prefix: str = "",
                        has_eval: bool | None = None) -> None:
    """Every step that uses data (a nested ``finetune:`` with epochs > 0, the ``finetune`` step,
    or what its config's ``needs_data()`` names, e.g. calibration) needs data, and one whose
    ``needs_eval()`` names something an evaluation (``has_eval``, default ``has_data``): one
    line naming the step and field, before any step has touched the model."""
    has_eval = has_data if has_eval is None else has_eval
    for i, config in enumerate(configs):
        use = config.needs_eval()
        if use and not has_eval:
            raise UserError(f"{prefix}steps[{i + 1}] ({config.name}): {use} needs an accuracy evaluation "
                            "(data with a test split, or eval_fn)")
        if has_data:
            continue
        for path, train in nested_sections(config, TrainConfig):
            if train.epochs > 0:
                what = f"{path}: " if path else ""
                raise UserError(f"{prefix}steps[{i + 1}] ({config.name}): {what}training needs a 'data' section "
                                f"(or set {path + '.' if path else ''}epochs: 0)")
        use = config.needs_data()
        if use:
            raise UserError(f"{prefix}steps[{i + 1}] ({config.name}): {use} needs a 'data' section")


def check_steps(configs: Sequence[TechniqueConfig], has_data: bool, prefix: str = "", allow_large: bool = False,
                override: str = "pass allow_large=True", has_eval: bool | None = None) -> None:
    """The checks of a list of step configs that need no model: data where a step uses it,
    and unless ``allow_large`` the bounds of :mod:`torchslim.core.limits` (``override``: how
    the message says to go beyond them)."""
    check_training_data(configs, has_data, prefix, has_eval)
    if not allow_large:
        for i, config in enumerate(configs):
            check_limits(config, f"{prefix}steps[{i + 1}] ({config.name}): ", override)


def _can_evaluate(data: Any, eval_fn: Callable[[nn.Module], float] | None) -> bool:
    """Whether accuracy can be measured: an ``eval_fn``, or data with a test split."""
    return eval_fn is not None or eval_split(data) is not None


def check_step_layer_names(model: nn.Module | Sequence[str], configs: Sequence[TechniqueConfig],
                           prefix: str = "") -> None:
    """Every layer name the steps give matches a module of the starting ``model`` (or its
    module names); after a step that may replace layers by containers, leniently (see
    :func:`torchslim.core.select.check_layer_names`). Each step checks again on the model it
    is about to change."""
    renamed = False
    for i, config in enumerate(configs):
        check_layer_names(model, config, f"{prefix}steps[{i + 1}] ({config.name}): ", renamed)
        renamed = renamed or not config.keeps_layer_names


def machine_info(threads: int | None) -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "threads": threads or torch.get_num_threads()}
    from importlib.metadata import PackageNotFoundError, version

    try:
        info["onnxruntime"] = version("onnxruntime")
    except PackageNotFoundError:
        info["onnxruntime"] = None
    return info


def compress(
    model: nn.Module,
    steps: Sequence[StepLike],
    *,
    example_inputs: Any = None,
    data: Any = None,
    eval_fn: Callable[[nn.Module], float] | None = None,
    measure: MeasureConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    out_dir: str | os.PathLike | OutDir | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    run_key: str = "",
    device: str | torch.device | None = None,
    allow_large: bool = False,
) -> CompressResult:
    """Copy ``model`` once, apply ``steps`` in order, and report every step.

    ``example_inputs``: tensor or tuple (batch 1 recommended); defaults to the first test image
    of ``data``, else a random input of the zoo model's shape. ``data``: a DataSplits, or a mapping
    ``{"train": ..., "val": ..., "test": ...}`` of torch Datasets or DataLoaders (val and test optional),
    used by training/calibrating techniques and, when ``eval_fn`` is None, for top-1 accuracy on
    the test split (no test split and no ``eval_fn``: no accuracy is reported).

    ``device``: cpu | cuda | cuda:N | auto, where every step trains, distils, calibrates and
    evaluates (default: the model's own device); the returned model is on the device ``model``
    was given on. ``eval_fn`` receives the model on ``device``.

    ``checkpoint_dir``: after each step the model and its step report are saved there, keyed by
    a digest of the starting model (architecture and weights), the data, the measurement
    settings, the seed, the torchslim version, ``run_key`` (anything else that changes the
    result, e.g. how accuracy is evaluated) and the configs so far; a later call with the same
    key resumes after the last saved step instead of redoing it.

    ``out_dir``: checked writable and locked against a concurrent run before any work (see
    :mod:`torchslim.core.outdir`); steps that write files (``codec.encode``, ``quant.ptq``) write
    there, and so do ``report.json``, ``report.md``, ``report.html`` and the plots, as ``torchslim run``
    writes them. An :class:`~torchslim.core.outdir.OutDir` the caller already holds is used as it
    is: the caller owns its lock and writes the reports (``torchslim run`` adds its recipe first).

    Before any work the steps are checked as a recipe's are (:func:`resolve_steps`: data where a
    step uses it, the size bounds of :mod:`torchslim.core.limits` unless ``allow_large``, every
    layer name against ``model``); each step checks its names again on the model it changes.
    """
    # a bad data mapping, step or device fails before out_dir is touched
    data = as_splits(data)
    configs = resolve_steps(steps, data is not None, model=model, has_eval=_can_evaluate(data, eval_fn),
                            measure=measure, allow_large=allow_large)
    caller_device = model_device(model)
    run_device = caller_device if device is None else resolve_device(device)
    held = isinstance(out_dir, OutDir)
    owned = None if out_dir is None or held else OutDir(out_dir)
    with owned or contextlib.nullcontext():
        out = out_dir.path if held else None if owned is None else owned.path
        measure = measure or MeasureConfig()
        inputs, eval_fn, numerics_batch = _run_inputs(model, data, example_inputs, eval_fn, run_device)
        work = copy.deepcopy(model).to(run_device).eval()
        # The caller's model is never modified, so it serves as the teacher without another copy
        # (one copy on the run's device when the caller's model lives elsewhere).
        teacher = model if caller_device == run_device else copy.deepcopy(model).to(run_device)
        ctx = Context(inputs, data=data, eval_fn=eval_fn, teacher=teacher, seed=seed, device=run_device,
                      progress=progress, out_dir=out, measure=measure)
        report = RunReport(
            model={"origin": getattr(model, "_torchslim_origin", None), "class": type(model).__name__,
                   "input_shapes": [list(t.shape) for t in inputs]},
            machine=machine_info(measure.threads),
            initial=snapshot(work, inputs, "original", measure, eval_fn),
            data=None if data is None else {"name": getattr(data, "name", None)},
            preprocessing=data_preprocessing(data),
            torchslim_version=_version(),
            created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        start_key = None if checkpoint_dir is None else _start_key(model, data, measure, seed, run_key)
        # A saved step may import user classes only when the caller's model already uses some.
        user_code = any(is_user_key(class_key(type(m))) for m in model.modules())
        saved = [None if start_key is None else _step_dir(Path(checkpoint_dir), start_key, configs, i)
                 for i in range(len(configs))]
        work = _apply_steps(work, configs, ctx, report, measure, numerics_batch, saved, user_code, checkpoint_dir)
        result = CompressResult(work.to(caller_device), report)
        if owned is not None:
            from torchslim.report.writer import write_report

            write_report(result.report, out)
    return result


def _run_inputs(model: nn.Module, data: Any, example_inputs: Any, eval_fn: Callable[[nn.Module], float] | None,
                device: torch.device) -> tuple[tuple[Any, ...], Callable[[nn.Module], float] | None, tuple[Any, ...]]:
    """(example inputs on ``device``, the evaluation, the batch the step numerics compare on)."""
    if example_inputs is None and data is not None:
        example_inputs = first_inputs(example_split(data), 1)  # the shape the model is really used at
    if example_inputs is None:
        from torchslim.zoo import example_input

        example_inputs = example_input(model)
    inputs = tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in as_input_tuple(example_inputs))
    if eval_fn is None and eval_split(data) is not None:
        from torchslim.train import evaluate

        eval_fn = lambda m: evaluate(m, eval_split(data))  # noqa: E731
    if eval_fn is not None:
        user_eval = eval_fn
        eval_fn = lambda m: user_eval(m.to(device))  # noqa: E731  (a step's new layers start on the CPU)
    numerics_batch = inputs if data is None else (first_inputs(example_split(data), 32, device=device),)
    return inputs, eval_fn, numerics_batch


def _apply_steps(work: nn.Module, configs: list[TechniqueConfig], ctx: Context, report: RunReport,
                 measure: MeasureConfig, numerics_batch: tuple[Any, ...], saved: list[Path | None],
                 user_code: bool, checkpoint_dir: str | os.PathLike | None) -> nn.Module:
    """Each step in order, resumed from ``saved[i]`` where that holds it, else run, measured
    and appended to ``report``; returns the final model."""
    before = report.initial
    steps_done: Progress | None = None  # created at the first step run here: resumed ones are not timed
    resumed_steps: list[int] = []
    for index, config in enumerate(configs):
        resumed = _load_step(saved[index], user_code) if saved[index] is not None else None
        if resumed is not None:
            work, step = resumed[0].to(ctx.device), resumed[1]
            report.steps.append(step)
            before = step.after
            resumed_steps.append(index + 1)
            continue
        if resumed_steps:
            note(_resumed_text(resumed_steps, checkpoint_dir), ctx.progress)
            resumed_steps = []
        if steps_done is None:
            steps_done = Progress(len(configs), "compress", enabled=ctx.progress, initial=index, bar=False)
        note(f"step {index + 1}/{len(configs)}: {config.name}", ctx.progress)
        technique = techniques().get(config.name)
        reference = run_eval(work, numerics_batch)
        torch.manual_seed(ctx.seed + index)
        start = time.perf_counter()
        try:
            check_layer_names(work, config)
            result = technique.handler(work, config, ctx)
        except UserError as exc:
            raise UserError(f"step {index + 1} ({config.name}): {exc}") from None
        seconds = time.perf_counter() - start
        ctx.invalidate()  # the step may have rewritten the model: no handler relies on a stale capture
        work = result.model.to(ctx.device).eval()
        max_abs, sqnr = output_error(reference, run_eval(work, numerics_batch))
        after = snapshot(work, ctx.example_inputs, f"after {config.name}", measure, ctx.eval_fn)
        after.file_bytes = result.details.get("file_bytes")  # only the step that wrote the file
        step = StepReport(index + 1, config.name, config.to_dict(), before, after, max_abs, sqnr,
                          round(seconds, 4), result.warnings, result.details)
        report.steps.append(step)
        if saved[index] is not None:
            _save_step(work, step, saved[index])
        before = after
        steps_done.update()
        steps_done.line(f"{config.name} done in {format_seconds(seconds)}")
    if resumed_steps:
        note(_resumed_text(resumed_steps, checkpoint_dir), ctx.progress)
    return work


def _resumed_text(indices: list[int], folder: str | os.PathLike | None) -> str:
    which = f"step {indices[0]}" if len(indices) == 1 else f"steps {indices[0]}-{indices[-1]}"
    return f"{which} resumed from {folder}"


def _start_key(model: nn.Module, data: Any, measure: MeasureConfig, seed: int, run_key: str) -> str:
    parts = [model_digest(model), data_digest(data), asdict(measure), seed, run_key, _version()]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _step_dir(root: Path, start_key: str, configs: list[TechniqueConfig], index: int) -> Path:
    so_far = [(c.name, c.to_dict()) for c in configs[: index + 1]]
    key = hashlib.sha256(json.dumps([start_key, so_far], sort_keys=True, default=str).encode()).hexdigest()
    return root / f"{index + 1:02d}-{configs[index].name}-{key[:12]}"


def _load_step(folder: Path, trust_code: bool) -> tuple[nn.Module, StepReport] | None:
    """A finished step saved by :func:`_save_step`, or None (absent or unreadable: redo it)."""
    from torchslim.serialize import load

    if not (folder / "step.json").is_file():
        return None
    try:
        step = StepReport.from_dict(json.loads((folder / "step.json").read_text(encoding="utf-8")))
        return load(folder / "model", trust_code=trust_code).eval(), step
    except (UserError, ValueError, TypeError, KeyError):
        return None


def _save_step(model: nn.Module, step: StepReport, folder: Path) -> None:
    """Model first, then step.json: a step counts as done only once both are complete."""
    from torchslim.core.atomic import write_text_atomic
    from torchslim.serialize import save

    try:
        save(model, folder / "model")
    except UserError as exc:  # a model that cannot be saved is still reported, just not resumable
        step.warnings.append(f"not checkpointed: {exc}")
        return
    write_text_atomic(folder / "step.json", json.dumps(asdict(step), default=str))


def _version() -> str:
    from torchslim import __version__

    return __version__
