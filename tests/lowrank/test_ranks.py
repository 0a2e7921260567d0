"""Rank selection against hand-computed references."""

from __future__ import annotations

import pytest
import torch

from torchslim.lowrank.ranks import evbmf_rank, greedy_allocation, spectrum_energy_rank


def test_energy_rank_by_hand():
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert spectrum_energy_rank(s, 9 / 14) == 1
    assert spectrum_energy_rank(s, 0.65) == 2
    assert spectrum_energy_rank(s, 13 / 14) == 2
    assert spectrum_energy_rank(s, 0.99) == 3
    assert spectrum_energy_rank(s, 1.0) == 3


@pytest.mark.parametrize("true_rank, shape", [(5, (60, 120)), (12, (100, 100)), (3, (40, 300))])
def test_vbmf_recovers_the_rank_of_a_noisy_low_rank_matrix(true_rank, shape):
    """Nakajima et al. 2013: with signal well above the noise threshold, EVBMF finds the true rank."""
    g = torch.Generator().manual_seed(true_rank)
    low = torch.randn(shape[0], true_rank, generator=g, dtype=torch.float64) @ torch.randn(
        true_rank, shape[1], generator=g, dtype=torch.float64)
    noisy = low + 0.1 * torch.randn(*shape, generator=g, dtype=torch.float64)
    assert evbmf_rank(torch.linalg.svdvals(noisy), max(shape)) == true_rank


def test_vbmf_pure_noise_gives_rank_one_floor():
    noise = torch.randn(50, 80, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert evbmf_rank(torch.linalg.svdvals(noise), 80) == 1


def test_greedy_takes_cheapest_error_per_mac_first():
    # layer a: saving 50 MACs costs 0.01 error; layer b: saving 50 MACs costs 0.5 error
    options = {"a": [("a50", 50, 0.01), ("a20", 20, 0.3)], "b": [("b50", 50, 0.5)]}
    original = {"a": 100, "b": 100}
    assert greedy_allocation(options, original, target_macs=150) == {"a": "a50", "b": None}
    # a needs to go further (to 20: +0.29 for 30 MACs) before b is worth it (+0.5 for 50)
    assert greedy_allocation(options, original, target_macs=120) == {"a": "a20", "b": None}
    assert greedy_allocation(options, original, target_macs=70) == {"a": "a20", "b": "b50"}
    # an unreachable target stops when no move is left
    assert greedy_allocation(options, original, target_macs=0) == {"a": "a20", "b": "b50"}


def test_proximal_step_soft_thresholds_the_singular_values():
    """prox of t * ||.||_* (Cai, Candes & Shen 2010): same singular vectors, s -> max(s - t, 0)."""
    from torchslim.lowrank.regularize import nuclear_norm, prox_nuclear_

    g = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64)
    s = torch.linalg.svdvals(weight.reshape(6, -1))
    t = float(s[3])
    shrunk = weight.clone()
    prox_nuclear_(shrunk, t)
    expected = (s - t).clamp_min(0)
    assert torch.allclose(torch.linalg.svdvals(shrunk.reshape(6, -1)), expected, atol=1e-10)
    assert torch.linalg.matrix_rank(shrunk.reshape(6, -1)) == 3
    assert float(nuclear_norm([weight])) == pytest.approx(float(s.sum()))


def test_proximal_threshold_follows_the_finetune_schedule():
    """eta_t of step t: lr * (1 + cos(pi t / T)) / 2 for cosine (Loshchilov & Hutter), lr for constant."""
    from torchslim.lowrank.regularize import step_lr
    from torchslim.train.config import TrainConfig

    assert step_lr(TrainConfig(lr=0.1), 0, 10) == pytest.approx(0.1)
    assert step_lr(TrainConfig(lr=0.1), 5, 10) == pytest.approx(0.05)
    assert step_lr(TrainConfig(lr=0.1, schedule="constant"), 5, 10) == pytest.approx(0.1)
    assert step_lr(TrainConfig(distill="l2"), 0, 10) == pytest.approx(0.001)  # the method's default lr
