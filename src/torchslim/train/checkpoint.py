"""Interrupt-safe training checkpoints: model + optimizer + scheduler + RNG + epoch.

Written atomically (temp file, then os.replace) so a kill mid-write leaves the previous
checkpoint intact; read with ``torch.load(weights_only=True)``, which never runs pickled code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.atomic import write_atomic
from torchslim.errors import UserError

FORMAT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epochs_done: int,
    history: dict[str, list[float]],
    config: dict[str, Any],
) -> None:
    state = {
        "format_version": FORMAT_VERSION,
        "epochs_done": epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "config": config,
    }
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: dict[str, Any],
) -> tuple[int, dict[str, list[float]]]:
    """Restore everything in place; returns (epochs_done, history dict)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file fails anywhere in the unpickler (even IndexError)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"checkpoint {path} is unreadable ({reason})") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} is not a torchslim training checkpoint")
    changed = [k for k in config if state["config"].get(k) != config[k]]
    if changed:
        diffs = ", ".join(f"{k}={state['config'].get(k)!r} (now {config[k]!r})" for k in changed)
        raise UserError(f"checkpoint {path} was written with {diffs}; delete it or match")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines())[:300]
        raise UserError(f"checkpoint {path} does not match the model ({detail})") from exc
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epochs_done"]), state["history"]
