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
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from torchslim.errors import UserError
from torchslim.train.batches import iter_batches
from torchslim.train.checkpoint import load_checkpoint, save_checkpoint
from torchslim.train.context import LossFn, StepContext, StepHook, TrainHistory
from torchslim.train.distributed import barrier, init_from_env, sum_across
from torchslim.train.evaluate import evaluate, model_device
from torchslim.train.losses import cross_entropy
from torchslim.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule


def _check_args(model: nn.Module, train_data: Dataset, config: dict[str, Any]) -> None:
    def positive_int(key: str) -> None:
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"fit: {key} must be a positive int, got {v!r}")

    positive_int("epochs")
    positive_int("batch_size")
    if config["lr"] < 0 or config["weight_decay"] < 0:
        raise UserError(
            f"fit: lr and weight_decay must be >= 0, got {config['lr']}, {config['weight_decay']}"
        )
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
    if not (hasattr(train_data, "__getitem__") and hasattr(train_data, "__len__")):
        kind = type(train_data).__name__
        raise UserError(
            f"fit: train_data must be a map-style Dataset (e.g. splits.train), got {kind}"
        )
    if len(train_data) == 0:  # type: ignore[arg-type]
        raise UserError("fit: train_data is empty")
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("fit: the model has no trainable parameters")


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm  # lazy: only needed when a bar is shown

    return tqdm(total=total, desc=desc, disable=not enabled, leave=True, dynamic_ncols=True)


def fit(
    model: nn.Module,
    train_data: Dataset,
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
    val_data: Dataset | None = None,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
) -> TrainHistory:
    """Train ``model`` in place on (inputs (N, ...), int64 targets (N,)) pairs.

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
    sampler = DistributedSampler(
        train_data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed
    )
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = make_schedule(opt, schedule, total_steps=epochs * steps_per_epoch)
    compute_loss = loss_fn if loss_fn is not None else cross_entropy(label_smoothing)

    history = TrainHistory()
    start_epoch = 0
    if checkpoint_path is not None and os.path.exists(checkpoint_path):
        start_epoch, saved = load_checkpoint(
            checkpoint_path, model=model, optimizer=opt, scheduler=sched, config=config
        )
        history = TrainHistory.from_dict(saved)
    net: nn.Module = DistributedDataParallel(model) if world_size > 1 else model
    show = progress and rank == 0 and sys.stderr.isatty()
    modes = [(m, m.training) for m in model.modules()]

    step = start_epoch * steps_per_epoch
    try:
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            model.train()
            loss_sum, seen = 0.0, 0
            bar = _progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", show)
            for inputs, targets in iter_batches(train_data, list(sampler), batch_size, device):
                ctx = StepContext(model, inputs, targets, net(inputs), epoch, step)
                loss = compute_loss(ctx)
                for extra in extra_losses:
                    loss = loss + extra(ctx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                done = replace(ctx, loss=loss.detach())
                for hook in after_step:
                    hook(done)
                step += 1
                loss_value = loss.item()
                loss_sum += loss_value * len(targets)
                seen += len(targets)
                bar.set_postfix(
                    loss=f"{loss_value:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}", refresh=False
                )
                bar.update()
            bar.close()
            loss_sum, seen = sum_across([loss_sum, float(seen)], world_size)
            history.train_loss.append(loss_sum / seen)
            if val_data is not None:
                history.val_accuracy.append(evaluate(model, val_data))
            history.epoch_seconds.append(time.perf_counter() - started)
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
