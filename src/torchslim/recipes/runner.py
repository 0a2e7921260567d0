"""Run a validated recipe: build the model and data, train if asked (cached), compress, write outputs.

Outputs in ``out_dir``: ``report.json``, ``report.md``, ``accuracy_vs_*.png``, the final model
as ``model/`` (spec.json + model.safetensors) and ``model.onnx``. A trained starting model is
cached in ``out_dir/checkpoints/<key>/``, keyed by the model, data, training and seed, and reused;
an interrupted training resumes from its last finished epoch, and an interrupted compression
from its last finished step (``out_dir/checkpoints/steps/``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.errors import UserError
from torchslim.recipes.schema import Recipe
from torchslim.report.schema import RunReport


def _load_data(recipe: Recipe) -> Any:
    if recipe.data is None:
        return None
    from torchslim.data import load_data

    return load_data(recipe.data.name, image_size=recipe.data.image_size, channels=recipe.data.channels,
                     seed=recipe.seed)


def _build_model(recipe: Recipe, data: Any) -> nn.Module:
    from torchslim.serialize import load
    from torchslim.zoo import create_model

    if recipe.model.checkpoint:
        return load(recipe.model.checkpoint)
    kwargs = dict(recipe.model.kwargs)
    if data is not None:
        kwargs.setdefault("in_channels", data.input_shape[0])
        kwargs.setdefault("num_classes", data.num_classes)
    torch.manual_seed(recipe.seed)
    model = create_model(recipe.model.name, **kwargs)
    if data is not None:  # the shape the model is trained and measured at
        model._torchslim_origin["input_shape"] = list(data.input_shape)
    return model


def _cache_key(recipe: Recipe) -> str:
    parts = {"model": asdict(recipe.model), "data": asdict(recipe.data) if recipe.data else None,
             "train": asdict(recipe.train) if recipe.train else None, "seed": recipe.seed}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def trained_model(recipe: Recipe, data: Any, out_dir: Path, progress: bool = True) -> nn.Module:
    """The recipe's starting model, trained per its ``train`` section; cached and reused."""
    from torchslim.serialize import load, save

    model = _build_model(recipe, data)
    if data is not None:
        from torchslim.profiler.analyze import run_checked

        with torch.no_grad():  # a model/data shape mismatch fails here in one line, not mid-training
            logits = run_checked(model.eval(), (data.test.tensors[0][:1],))
        if isinstance(logits, torch.Tensor) and logits.shape[-1] != data.num_classes:
            raise UserError(f"{recipe.source}: model: it has {logits.shape[-1]} outputs but data "
                            f"'{recipe.data.name}' has {data.num_classes} classes")
    if recipe.train is None or recipe.model.checkpoint:
        return model
    cache = out_dir / "checkpoints" / f"{recipe.model.name.replace(':', '_')}-{_cache_key(recipe)}"
    if (cache / "spec.json").is_file():
        return load(cache)
    from torchslim.train import fit

    # Per-epoch training state: an interrupted run resumes from the last finished epoch.
    partial = cache.with_name(cache.name + ".partial.pt")
    partial.parent.mkdir(parents=True, exist_ok=True)
    fit(model, data.train, val_data=data.val, seed=recipe.seed, progress=progress, checkpoint_path=partial,
        **recipe.train.fit_kwargs())
    save(model, cache)
    partial.unlink(missing_ok=True)
    return model.eval()


def run_recipe(recipe: Recipe, out_dir: str | os.PathLike, progress: bool = True) -> RunReport:
    """Run ``recipe`` into ``out_dir``, which is checked writable and locked first
    (:mod:`torchslim.core.outdir`): a second run into the same folder refuses."""
    from torchslim.core.outdir import OutDir

    with OutDir(out_dir) as out:
        return _run(recipe, out, progress)


def _run(recipe: Recipe, out: Path, progress: bool) -> RunReport:
    from torchslim.pipeline import run_steps
    from torchslim.profiler import export_onnx
    from torchslim.report.writer import write_report
    from torchslim.serialize import save

    data = _load_data(recipe)
    model = trained_model(recipe, data, out, progress)
    if data is not None:
        example = (data.test.tensors[0][:1],)
    else:
        from torchslim.zoo import example_input

        example = (example_input(model),)
    eval_fn = None
    if data is not None:
        from torchslim.train import evaluate

        split = getattr(data, recipe.eval.split)
        eval_fn = lambda m: evaluate(m, split, batch_size=recipe.eval.batch_size)  # noqa: E731
    result = run_steps(model, recipe.steps, example_inputs=example, data=data, eval_fn=eval_fn,
                       measure=recipe.measure, seed=recipe.seed, progress=progress, out_dir=out,
                       checkpoint_dir=out / "checkpoints" / "steps",
                       run_key=json.dumps(asdict(recipe.eval)))
    result.report.model["recipe"] = recipe.source
    write_report(result.report, out)
    save(result.model, out / "model")
    export_onnx(result.model, example, out / "model.onnx")
    return result.report
