"""Rank selection: energy threshold, fraction of full rank, fixed rank, VBMF estimate, MACs target.

All methods look at the singular values of each layer's unfolding(s) (one matrix for SVD and
spatial, two for Tucker-2 / CP), computed once per layer with ``torch.linalg.svdvals``.

- energy: smallest r with sum_{i<r} s_i^2 >= energy * sum_i s_i^2.
- VBMF: the analytic empirical variational Bayesian matrix factorization of Nakajima,
  Sugiyama, Babacan & Tomioka (JMLR 2013, "Global analytic solution of fully-observed
  variational Bayesian matrix factorization"), Theorem 13 / Eq. (34) and the noise variance
  sigma^2 found by minimising the free energy (their Eq. (40)-(42)); as used for Tucker ranks
  by Kim et al. (ICLR 2016). Hand-written (no maintained package does it); the free-energy
  minimisation uses ``scipy.optimize.minimize_scalar``.
- macs: each layer's largest rank with at most 1 / ``target_macs`` of its MACs (scope
  "layer"), or a greedy allocation across layers (scope "model"): starting from the
  unfactorized model, repeatedly take the move (one layer to a lower candidate rank) with the
  smallest increase in relative squared weight error per MAC saved, until the selected
  layers' MACs are at most 1 / ``target_macs`` of the original. The error of a candidate is exact for SVD and spatial
  (Eckart-Young) and the HOSVD bound for Tucker-2; CP has no cheap error, so CP falls back to
  the per-layer allocation, where its rank (MACs linear in R, R not capped by the channel
  counts) is solved for directly.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
import torch

from torchslim.lowrank.config import FactorizeConfig
from torchslim.lowrank.layers import Layer, Method, Rank, original_macs


def spectrum_energy_rank(s: torch.Tensor, energy: float) -> int:
    """Smallest r with sum(s[:r]^2) >= energy * sum(s^2) (s sorted descending)."""
    e = (s.double() ** 2).cumsum(0)
    if e[-1] <= 0:
        return 1
    return int(torch.searchsorted(e / e[-1], torch.tensor(energy, dtype=e.dtype) - 1e-12).item()) + 1


def discarded_fraction(s: torch.Tensor, r: int) -> float:
    """sum(s[r:]^2) / sum(s^2): relative squared error of the best rank-r approximation."""
    e = s.double() ** 2
    total = float(e.sum())
    return float(e[r:].sum()) / total if total > 0 else 0.0


def evbmf_rank(s: torch.Tensor | np.ndarray, other_dim: int) -> int:
    """EVBMF rank of an L x M matrix (L <= M = ``other_dim``) from its L singular values ``s``.

    The noise variance sigma^2 minimises the free energy over [lower, upper] (Nakajima et al.
    2013, Sec. 5.2); components with s_h > sqrt(M sigma^2 (1 + tau) (1 + alpha / tau)) are
    kept, alpha = L / M, tau = 2.5129 sqrt(alpha) (their Eq. (34)). Returns at least 1.
    """
    from scipy.optimize import minimize_scalar

    s = np.asarray(s.detach().double().cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float64)
    s = np.sort(np.maximum(s, 1e-300))[::-1]
    n_l, n_m = len(s), max(int(other_dim), len(s))
    alpha = n_l / n_m
    tau_bar = 2.5129 * math.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    eh_ub = int(min(math.ceil(n_l / (1 + alpha)) - 1, n_l)) - 1
    upper = float(np.sum(s**2)) / (n_l * n_m)
    lower = max(s[eh_ub + 1] ** 2 / (n_m * x_bar), float(np.mean(s[eh_ub + 1:] ** 2)) / n_m)
    if not lower < upper:
        lower, upper = min(lower, upper) * 0.5, max(lower, upper)

    def free_energy(sigma2: float) -> float:
        x = s**2 / (n_m * sigma2)
        z1, z2 = x[x > x_bar], x[x <= x_bar]
        tau_z1 = 0.5 * (z1 - (1 + alpha) + np.sqrt((z1 - (1 + alpha)) ** 2 - 4 * alpha))
        return float(np.sum(z2 - np.log(z2)) + np.sum(z1 - tau_z1) + np.sum(np.log((tau_z1 + 1) / z1))
                     + alpha * np.sum(np.log(tau_z1 / alpha + 1)))

    sigma2 = minimize_scalar(free_energy, bounds=(lower, upper), method="bounded").x
    threshold = math.sqrt(n_m * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return max(1, int(np.sum(s > threshold)))


def _spectra(layer: Layer, method: Method) -> list[tuple[torch.Tensor, int]]:
    """(singular values descending, larger side) of each unfolding."""
    out = []
    for matrix in method.unfold(layer):
        out.append((torch.linalg.svdvals(matrix.detach().double()), max(matrix.shape)))
    return out


def _per_spectrum(spectra: list[tuple[torch.Tensor, int]], config: FactorizeConfig) -> list[int]:
    if config.rank_method == "energy":
        return [spectrum_energy_rank(s, config.energy) for s, _ in spectra]
    if config.rank_method == "fraction":
        return [max(1, math.ceil(config.rank_fraction * len(s))) for s, _ in spectra]
    if config.rank_method == "rank":
        return [min(config.rank, len(s)) for s, _ in spectra]
    if config.rank_method == "vbmf":
        return [evbmf_rank(s, m) for s, m in spectra]
    raise ValueError(config.rank_method)


def _candidates(layer: Layer, method: Method, spectra: list[tuple[torch.Tensor, int]], levels: int
                ) -> list[tuple[Rank, int, float | None]]:
    """(rank, macs, error) for a grid of ranks (the same fraction of every unfolding's full
    rank), only those that save MACs, sorted by MACs descending."""
    full = [len(s) for s, _ in spectra]
    out: dict[Any, tuple[Rank, int, float | None]] = {}
    for k in range(levels, 0, -1):
        rank = method.rank_from(layer, [max(1, math.ceil(n * k / levels)) for n in full])
        if rank in out:
            continue
        macs = method.macs(layer, rank)
        if macs < original_macs(layer):
            out[rank] = (rank, macs, method.error([s for s, _ in spectra], rank))
    return sorted(out.values(), key=lambda c: -c[1])


def greedy_allocation(options: dict[str, list[tuple[Rank, int, float]]], original: dict[str, int],
                      target_macs: float) -> dict[str, Rank | None]:
    """Greedy: the move with least error increase per MAC saved, until MACs <= target.

    ``options[name]``: candidates (rank, macs, error) sorted by MACs descending; ``original``:
    each layer's unfactorized MACs (error 0). Returns the rank per layer (None: unfactorized).
    """
    state = {name: (-1, original[name], 0.0) for name in original}  # (index, macs, error)
    total = sum(original.values())
    while total > target_macs:
        best: tuple[float, int, str, int] | None = None
        for name, (index, macs, err) in state.items():
            for j in range(index + 1, len(options.get(name, []))):
                _, m, e = options[name][j]
                saved = macs - m
                if saved <= 0:
                    continue
                score = (max(e - err, 0.0) / saved, -saved)
                if best is None or score < best[:2]:
                    best = (*score, name, j)  # type: ignore[assignment]
        if best is None:
            break
        _, _, name, j = best
        rank, m, e = options[name][j]
        total -= state[name][1] - m
        state[name] = (j, m, e)
    return {name: (options[name][i][0] if i >= 0 else None) for name, (i, _, _) in state.items()}


def choose_ranks(layers: list[Layer], method: Method, config: FactorizeConfig, excluded: Collection[str] = ()
                 ) -> tuple[dict[str, Rank | None], dict[str, float | None], list[str]]:
    """Rank per layer (None: leave alone), the weight error of that rank, and notes.

    Layers in ``excluded`` stay unfactorized but count towards a model-scope MACs target.
    """
    notes: list[str] = []
    spectra = {layer.name: _spectra(layer, method) for layer in layers}
    ranks: dict[str, Rank | None] = {}
    active = [layer for layer in layers if layer.name not in excluded]
    if config.rank_method != "macs":
        for layer in active:
            ranks[layer.name] = method.rank_from(layer, _per_spectrum(spectra[layer.name], config))
    elif config.scope == "model" and method.name != "cp":
        options = {layer.name: _candidates(layer, method, spectra[layer.name], 32) for layer in active}
        original = {layer.name: original_macs(layer) for layer in layers}
        fixed = {n: m for n, m in original.items() if n in excluded}
        target = sum(original.values()) / config.target_macs - sum(fixed.values())
        ranks = greedy_allocation(options, {n: m for n, m in original.items() if n not in excluded}, target)
    elif method.name == "cp":
        # CP MACs are R times a per-rank cost and R may exceed both channel counts: solve directly.
        for layer in active:
            rank = int(original_macs(layer) / config.target_macs // method.macs(layer, 1))
            ranks[layer.name] = rank if rank >= 1 else None
            if rank < 1:
                notes.append(f"{layer.name}: no rank reaches target_macs {config.target_macs}, left alone")
    else:
        for layer in active:
            levels = max(len(s) for s, _ in spectra[layer.name])
            fits = [c for c in _candidates(layer, method, spectra[layer.name], levels)
                    if c[1] * config.target_macs <= original_macs(layer)]
            ranks[layer.name] = fits[0][0] if fits else None
            if not fits:
                notes.append(f"{layer.name}: no rank reaches target_macs {config.target_macs}, left alone")
    errors = {name: (None if r is None else method.error([s for s, _ in spectra[name]], r)) for name, r in ranks.items()}
    return ranks, errors, notes
