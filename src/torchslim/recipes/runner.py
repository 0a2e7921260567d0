"""Run a validated recipe: build the model and data, train if asked (cached), compress, write outputs.

Outputs in ``out_dir``: ``report.json``, ``report.md``, ``report.html``, the plots, the final
model as ``model/`` (spec.json + model.safetensors), ``model.onnx`` (standardised inputs, the
preprocessing in its metadata) and ``model_raw_input.onnx`` (raw pixels, preprocessing in the graph). A trained starting model is
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

from torchslim.core.device import resolve_device
from torchslim.core.outdir import OutDir
from torchslim.core.progress import note
from torchslim.data.access import example_split, first_inputs
from torchslim.errors import UserError
from torchslim.recipes.schema import Recipe
from torchslim.report.schema import RunReport
from torchslim.train.evaluate import model_device


def _load_data(recipe: Recipe) -> Any:
    if recipe.data is None:
        return None
    from torchslim.data import load_data
    from torchslim.data.sources import load_split_sources

    section = recipe.data
    options = dict(image_size=section.image_size, channels=section.channels, seed=recipe.seed)
    if section.num_workers:
        options["num_workers"] = section.num_workers
    if section.train:
        return load_split_sources(section.train, section.val or None, section.test or None, **options)
    return load_data(section.name, **options)


def _build_model(recipe: Recipe, data: Any) -> nn.Module:
    from torchslim.serialize import load
    from torchslim.zoo import create_model
    from torchslim.zoo.user import build_user_model, load_weights_

    section = recipe.model
    if section.checkpoint:
        return load(section.checkpoint, trust_code=section.trust_code)
    torch.manual_seed(recipe.seed)
    if section.builder:
        model = build_user_model(section.builder, builder_kwargs(recipe, data))
    else:
        model = create_model(section.name, **{**_from_data(data), **section.kwargs})
        if data is not None:  # the shape the model is trained and measured at
            model._torchslim_origin["input_shape"] = list(data.input_shape)
    if section.checkpoint_weights:
        load_weights_(model, section.checkpoint_weights)
    return model


def _from_data(data: Any) -> dict[str, int]:
    return {} if data is None else {"in_channels": data.input_shape[0], "num_classes": data.num_classes}


def builder_kwargs(recipe: Recipe, data: Any) -> dict[str, Any]:
    """The builder's arguments: the recipe's, plus in_channels / num_classes from the data
    where the builder takes them."""
    from torchslim.zoo.user import import_builder, with_data_kwargs

    return with_data_kwargs(import_builder(recipe.model.builder), recipe.model.kwargs, **_from_data(data))


def _file_digest(path: str | None) -> str | None:
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_key(recipe: Recipe) -> str:
    parts = {"model": asdict(recipe.model), "data": asdict(recipe.data) if recipe.data else None,
             "train": asdict(recipe.train) if recipe.train else None, "seed": recipe.seed,
             "weights": _file_digest(recipe.model.checkpoint_weights)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def trained_model(recipe: Recipe, data: Any, out_dir: Path, progress: bool = True) -> nn.Module:
    """The recipe's starting model, trained per its ``train`` section; cached and reused."""
    from torchslim.serialize import load, save

    model = _build_model(recipe, data)
    if data is not None:
        from torchslim.profiler.analyze import run_checked

        with torch.no_grad():  # a model/data shape mismatch fails here in one line, not mid-training
            logits = run_checked(model.eval(), (first_inputs(example_split(data), 1),))
        if isinstance(logits, torch.Tensor) and logits.shape[-1] != data.num_classes:
            raise UserError(f"{recipe.source}: model: it has {logits.shape[-1]} outputs but data "
                            f"'{recipe.data.name or recipe.data.train}' has {data.num_classes} classes")
    if recipe.train is None or recipe.model.checkpoint:
        return model
    label = (recipe.model.name or recipe.model.builder or "model").replace(":", "_")
    cache = out_dir / "checkpoints" / f"{label}-{_cache_key(recipe)}"
    if (cache / "spec.json").is_file():
        note(f"reusing trained model from {cache}", progress)
        return load(cache, trust_code=bool(recipe.model.builder))  # the builder's own classes, imported already
    from torchslim.train import fit

    # Per-epoch training state: an interrupted run resumes from the last finished epoch.
    partial = cache.with_name(cache.name + ".partial.pt")
    partial.parent.mkdir(parents=True, exist_ok=True)
    built_on = model_device(model)
    fit(model.to(resolve_device(recipe.device or built_on)), data.train, val_data=data.val, seed=recipe.seed,
        progress=progress, checkpoint_path=partial, **recipe.train.fit_kwargs())
    model.to(built_on)
    save(model, cache)
    partial.unlink(missing_ok=True)
    return model.eval()


def run_recipe(recipe: Recipe, out_dir: str | os.PathLike, progress: bool = True) -> RunReport:
    """Run ``recipe`` into ``out_dir``, which is checked writable and locked first
    (:mod:`torchslim.core.outdir`): a second run into the same folder refuses."""
    held = OutDir(out_dir)
    with held:
        return _run(recipe, held, progress)


def _run(recipe: Recipe, held: OutDir, progress: bool) -> RunReport:
    from torchslim.pipeline import compress
    from torchslim.profiler import export_onnx
    from torchslim.report.writer import write_report
    from torchslim.serialize import save

    out = held.path
    data = _load_data(recipe)
    model = trained_model(recipe, data, out, progress)
    if data is not None:
        example = (first_inputs(example_split(data), 1),)
    elif recipe.model.input_shape is not None:
        example = (torch.randn(1, *recipe.model.input_shape, generator=torch.Generator().manual_seed(recipe.seed)),)
    else:
        from torchslim.zoo import example_input

        example = (example_input(model),)
    eval_fn = None
    if data is not None:
        from torchslim.train import evaluate

        split = getattr(data, recipe.eval.split)
        eval_fn = lambda m: evaluate(m, split, batch_size=recipe.eval.batch_size)  # noqa: E731
    # the folder held here: compress writes into it, and the reports are written below with the recipe
    result = compress(model, recipe.steps, example_inputs=example, data=data, eval_fn=eval_fn,
                      measure=recipe.measure, seed=recipe.seed, progress=progress, out_dir=held,
                      checkpoint_dir=out / "checkpoints" / "steps",
                      run_key=json.dumps(asdict(recipe.eval)), device=recipe.device,
                      allow_large=recipe.allow_large)
    result.report.model["recipe"] = recipe.source
    if recipe.model.builder:
        result.report.model["builder"] = {"path": recipe.model.builder, "kwargs": builder_kwargs(recipe, data)}
    write_report(result.report, out)
    pre = result.report.preprocessing
    save(result.model, out / "model", metadata={"input_shape": list(example[0].shape[1:]), "preprocessing": pre})
    export_onnx(result.model, example, out / "model.onnx", preprocessing=pre)
    if pre is not None:  # the same model taking raw pixels (e.g. 0..255): nothing to standardise outside
        export_onnx(result.model, example, out / "model_raw_input.onnx", preprocessing=pre,
                    include_preprocessing=True)
    return result.report
