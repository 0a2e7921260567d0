"""``fit``: the one training loop every technique reuses (fine-tuning after pruning,
distillation, regularisers, quantization-aware training).

Per step: outputs = model(inputs); loss = loss_fn(ctx) + sum(f(ctx) for f in extra_losses);
backward; optimizer.step(); scheduler.step(); then each after_step(ctx) hook. See the
``torchslim.train`` docstring for hook examples.

Determinism: ``torch.manual_seed(seed)`` at the start and a DistributedSampler seeded with
``seed`` (reshuffled per epoch via set_epoch) give bit-identical weights for the same seed.
One process uses the same sampler with num_replicas=1, so under ``torchrun`` with P processes
of batch B each step sees exactly the examples one process sees with batch P * B.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from torchslim.core.progress import Progress, note
from torchslim.data.access import batches, check_split, is_streamed, num_batches, num_samples
from torchslim.errors import UserError
from torchslim.train.checkpoint import load_checkpoint, save_checkpoint
from torchslim.train.context import LossFn, StepContext, StepHook, TrainHistory
from torchslim.train.distributed import barrier, init_from_env, sum_across
from torchslim.train.evaluate import evaluate, model_device
from torchslim.train.labels import check_class_labels
from torchslim.train.losses import cross_entropy
from torchslim.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule


def _check_args(model: nn.Module, train_data: Any, config: dict[str, Any]) -> None:
    def positive_int(key: str) -> None:
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"fit: {key} must be a positive int, got {v!r}")

    positive_int("epochs")
    positive_int("batch_size")
    for key in ("lr", "weight_decay", "momentum"):
        if not math.isfinite(config[key]) or config[key] < 0:
            raise UserError(f"fit: {key} must be a finite number >= 0, got {config[key]}")
    if not 0.0 <= config["label_smoothing"] < 1.0:
        raise UserError(f"fit: label_smoothing must be in [0, 1), got {config['label_smoothing']}")
    if config["optimizer"] not in OPTIMIZERS:
        raise UserError(
            f"fit: unknown optimizer {config['optimizer']!r}; known: {', '.join(OPTIMIZERS)}"
        )
    if config["schedule"] not in SCHEDULES:
        raise UserError(
            f"fit: unknown schedule {config['schedule']!r}; known: {', '.join(SCHEDULES)}"
        )
    check_split(train_data, "fit: train_data")
    if num_samples(train_data) == 0:
        raise UserError("fit: train_data is empty")
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("fit: the model has no trainable parameters")


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


SINGLE_BATCH_NOTE = ("fit: skipping a training batch of 1 example (BatchNorm cannot normalise a single "
                     "example in training mode); each epoch trains on the rest")


def optimizer_steps_per_epoch(model: nn.Module, train_data: Any, batch_size: int) -> int | None:
    """How many optimizer steps ``fit`` takes per epoch on one process (None: length unknown):
    techniques mirroring fit's schedule (AGP events, proximal steps) count with this."""
    if is_streamed(train_data):
        return num_batches(train_data, batch_size)
    return -(-_kept(len(train_data), batch_size, _has_batchnorm(model)) // batch_size)


def steps_per_epoch(model: nn.Module, train_data: Any, batch_size: int, step: str) -> int:
    """:func:`optimizer_steps_per_epoch`, or a UserError naming ``step`` when the length is unknown."""
    steps = optimizer_steps_per_epoch(model, train_data, batch_size)
    if steps is None:
        raise UserError(f"{step}: its schedule needs a training split of known length (a map-style Dataset, "
                        "or a DataLoader with len)")
    return steps


def _kept(n: int, batch_size: int, drop_single: bool) -> int:
    """Examples trained per epoch out of ``n``: a last batch of exactly one is dropped when ``drop_single``."""
    return n - 1 if drop_single and n > 1 and n % batch_size == 1 else n


def _epoch_order(sampler: DistributedSampler, batch_size: int, drop_single: bool) -> list[int]:
    """This epoch's example indices, without a dropped single last example."""
    order = list(sampler)
    return order[:_kept(len(order), batch_size, drop_single)]


def fit(
    model: nn.Module,
    train_data: Dataset | DataLoader,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.05,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    label_smoothing: float = 0.0,
    seed: int = 0,
    loss_fn: LossFn | None = None,
    extra_losses: Sequence[LossFn] = (),
    after_step: Sequence[StepHook] = (),
    val_data: Dataset | DataLoader | None = None,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
) -> TrainHistory:
    """Train ``model`` in place on (inputs (N, ...), int64 targets (N,)) pairs, on the model's device.

    ``train_data`` / ``val_data``: any split :mod:`torchslim.data.access` reads. A map-style
    Dataset (TensorDataset or the user's own, with its transforms) is shuffled per epoch by a
    seeded sampler at ``batch_size``; an IterableDataset comes in its own order at ``batch_size``;
    a DataLoader is used as given (its order, batch size, workers and collate; ``batch_size``
    and the shuffling seed do not apply; under torchrun give it a DistributedSampler, whose
    ``set_epoch`` is called every epoch). A model with BatchNorm skips a training batch of one example (and warns once).
    The default loss checks labels: float labels, or a label outside the model's K outputs,
    are a one-line UserError; a non-finite loss stops training with one too.

    optimizer "sgd" (momentum, L2 weight decay) or "adamw"; schedule "cosine" (per step, from
    lr to 0 over epochs * steps_per_epoch) or "constant". ``loss_fn(ctx)`` replaces the
    default cross-entropy with ``label_smoothing``; ``extra_losses`` are added to it;
    ``after_step`` hooks run after each optimizer step. ``val_data`` is scored after each
    epoch. With ``checkpoint_path`` the state is saved atomically after every epoch and a
    run restarted with the same arguments resumes from it. Under torchrun (WORLD_SIZE > 1)
    the model is wrapped in DistributedDataParallel (gloo) and ``batch_size`` is per process;
    only rank 0 shows progress and writes the checkpoint. Submodule train/eval modes are
    restored on return.
    """
    config = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": float(lr),
        "optimizer": optimizer,
        "momentum": float(momentum),
        "weight_decay": float(weight_decay),
        "schedule": schedule,
        "label_smoothing": float(label_smoothing),
        "seed": seed,
    }
    _check_args(model, train_data, config)
    rank, world_size = init_from_env()
    torch.manual_seed(seed)
    device = model_device(model)
    drop_single = _has_batchnorm(model)
    streamed = is_streamed(train_data)  # a DataLoader / IterableDataset keeps its own order and batches
    sampler = None if streamed else DistributedSampler(
        train_data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed
    )
    epoch_steps = -(-_kept(len(sampler), batch_size, drop_single) // batch_size) if sampler is not None \
        else num_batches(train_data, batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay)
    # Unknown epoch length (an iterable without len): the schedule advances once per epoch.
    per_step = epoch_steps is not None
    sched = make_schedule(opt, schedule, total_steps=epochs * epoch_steps if per_step else epochs)
    compute_loss = loss_fn if loss_fn is not None else cross_entropy(label_smoothing)
    said_single = sampler is not None and _kept(len(sampler), batch_size, drop_single) < len(sampler)
    if said_single:
        warnings.warn(SINGLE_BATCH_NOTE, stacklevel=2)

    history = TrainHistory()
    start_epoch = 0
    if checkpoint_path is not None and os.path.exists(checkpoint_path):
        start_epoch, saved = load_checkpoint(
            checkpoint_path, model=model, optimizer=opt, scheduler=sched, config=config
        )
        history = TrainHistory.from_dict(saved)
    net: nn.Module = DistributedDataParallel(model) if world_size > 1 else model
    show = progress and rank == 0
    if start_epoch:
        note(f"training: resuming after epoch {start_epoch}/{epochs} from {checkpoint_path}", show)
    # One line per epoch (loss, val accuracy, elapsed, time left); a bar per epoch on a terminal.
    epoch_lines = Progress(epochs, "epoch", enabled=show, initial=start_epoch, bar=False)
    modes = [(m, m.training) for m in model.modules()]

    step = start_epoch * (epoch_steps or 0)  # unknown length: steps count from the resumed epoch
    try:
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            model.train()
            loss_sum, seen = 0.0, 0
            bar = Progress(epoch_steps, f"epoch {epoch + 1}/{epochs}", enabled=show, unit="step")
            if sampler is not None:
                sampler.set_epoch(epoch)
                epoch_batches = batches(train_data, batch_size, device=device,
                                        order=_epoch_order(sampler, batch_size, drop_single))
            else:
                if hasattr(getattr(train_data, "sampler", None), "set_epoch"):
                    train_data.sampler.set_epoch(epoch)  # a user's DistributedSampler
                epoch_batches = batches(train_data, batch_size, device=device)
            for inputs, targets in epoch_batches:
                if drop_single and len(inputs) == 1:
                    if not said_single:
                        warnings.warn(SINGLE_BATCH_NOTE, stacklevel=2)
                        said_single = True
                    continue
                ctx = StepContext(model, inputs, targets, net(inputs), epoch, step)  # type: ignore[arg-type]
                if loss_fn is None:
                    check_class_labels(targets, ctx.outputs, train_data)
                loss = compute_loss(ctx)
                for extra in extra_losses:
                    loss = loss + extra(ctx)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise UserError(f"fit: loss is {loss_value} at epoch {epoch + 1}, step {step + 1} "
                                    f"(lr {sched.get_last_lr()[0]:.3g}); lower lr or check the data for NaN/inf")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if per_step:
                    sched.step()
                done = replace(ctx, loss=loss.detach())
                for hook in after_step:
                    hook(done)
                step += 1
                loss_sum += loss_value * len(inputs)
                seen += len(inputs)
                bar.update(loss=f"{loss_value:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if not per_step:
                sched.step()
            bar.close(finished=False)  # the epoch line below replaces it
            loss_sum, seen = sum_across([loss_sum, float(seen)], world_size)
            if seen == 0:
                raise UserError("fit: no batch of 2 or more examples to train on (BatchNorm needs 2 per batch)")
            history.train_loss.append(loss_sum / seen)
            if val_data is not None:
                history.val_accuracy.append(evaluate(model, val_data))
            history.epoch_seconds.append(time.perf_counter() - started)
            epoch_lines.update()
            val = f", val acc {100 * history.val_accuracy[-1]:.2f}%" if val_data is not None else ""
            epoch_lines.line(f"loss {history.train_loss[-1]:.4f}{val}")
            if checkpoint_path is not None:
                if rank == 0:
                    save_checkpoint(
                        checkpoint_path,
                        model=model,
                        optimizer=opt,
                        scheduler=sched,
                        epochs_done=epoch + 1,
                        history=history.to_dict(),
                        config=config,
                    )
                barrier(world_size)  # nobody may read a checkpoint rank 0 is still writing
        barrier(world_size)
    finally:
        for m, training in modes:
            m.training = training
    return history
