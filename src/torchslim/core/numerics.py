"""How far a changed model's output is from the reference: max abs error and SQNR."""

from __future__ import annotations

import math

import torch


def sqnr_from_energy(signal_energy: float, noise_energy: float) -> float | None:
    """10 log10(signal / noise) in dB; None when the noise is zero (an exact result)."""
    if noise_energy <= 0.0:
        return None
    if signal_energy <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_energy / noise_energy)


def sqnr_db(reference: torch.Tensor, output: torch.Tensor) -> float | None:
    """SQNR = 10 log10(sum(ref^2) / sum((ref - out)^2)) in dB; None when identical."""
    ref, out = reference.detach().double(), output.detach().double()
    return sqnr_from_energy(ref.pow(2).sum().item(), (ref - out).pow(2).sum().item())


def output_error(reference: torch.Tensor, output: torch.Tensor) -> tuple[float, float | None]:
    """(max abs error, SQNR in dB); SQNR is None when the outputs are identical."""
    if reference.shape != output.shape:
        raise ValueError(f"output shape changed from {tuple(reference.shape)} to {tuple(output.shape)}")
    max_abs = (reference.double() - output.double()).abs().max().item() if reference.numel() else 0.0
    return max_abs, sqnr_db(reference, output)
