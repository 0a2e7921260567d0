"""Where a run trains, distils, calibrates and evaluates: ``cpu | cuda | cuda:N | auto``."""

from __future__ import annotations

from typing import Any

import torch

from torchslim.errors import UserError

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


def resolve_device(device: Any) -> torch.device:
    """A torch.device for ``device`` (``auto``: the first GPU when there is one, else the CPU).

    UserError in one line for anything else, and for a GPU this machine does not have.
    """
    if isinstance(device, torch.device):
        text = str(device)
    elif isinstance(device, str):
        text = device.strip().lower()
    else:
        raise UserError(f"device must be {DEVICE_CHOICES}, got {device!r}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise UserError(f"device must be {DEVICE_CHOICES}, got {device!r}")
    if not torch.cuda.is_available():
        raise UserError(f"device {text!r}: no CUDA GPU is available here (torch.cuda.is_available() is False; "
                        "use device: cpu or auto)")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise UserError(f"device {text!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device(text)
