import math

import numpy as np
import pytest
import torch

from torchslim.quant.observers import (
    Observer,
    QParams,
    entropy_range,
    fake_quantize,
    mse_range,
    percentile_range,
    qparams_from_range,
    quantize_weight,
    symmetric_weight_scales,
)


def test_minmax_uint8_asymmetric_hand_computed():
    obs = Observer("minmax", "uint8")
    obs.update(torch.tensor([-1.0, 0.5]))
    obs.update(torch.tensor([3.0, 0.0]))
    q = obs.qparams()
    # s = (3 - (-1)) / 255; z = round(1 / s) = round(63.75) = 64
    assert q == QParams(4.0 / 255.0, 64, 0, 255)


def test_minmax_int8_symmetric_hand_computed():
    obs = Observer("minmax", "int8")
    obs.update(torch.tensor([-1.0, 0.5, 3.0]))
    assert obs.qparams() == QParams(3.0 / 127.0, 0, -128, 127)


def test_range_always_contains_zero():
    # post-ReLU-like data [2, 5]: widened to [0, 5] so that 0 is exactly representable
    q = qparams_from_range(2.0, 5.0, "uint8")
    assert q.zero_point == 0 and q.scale == pytest.approx(5.0 / 255.0)
    assert fake_quantize(torch.tensor([0.0]), q).item() == 0.0


def test_percentile_matches_numpy_hand_case():
    values = torch.arange(101, dtype=torch.float32)  # 0..100: the 1st/99th percentiles are 1 and 99
    assert percentile_range(values, 99.0) == pytest.approx((1.0, 99.0))
    obs = Observer("percentile", "uint8", percentile=99.0)
    obs.update(values)
    assert obs.qparams() == QParams(99.0 / 255.0, 0, 0, 255)  # [1, 99] widened to [0, 99]


@pytest.mark.parametrize("p", [99.0, 99.9, 99.99, 100.0])
def test_percentile_matches_numpy_random(p):
    x = torch.randn(5003, generator=torch.Generator().manual_seed(0))
    expected = np.percentile(x.double().numpy(), [100 - p, p])
    assert percentile_range(x, p) == pytest.approx(tuple(expected), abs=1e-6)


def test_mse_matches_brute_force_reference():
    torch.manual_seed(1)
    x = torch.distributions.Laplace(0.0, 1.0).sample((4000,))  # heavy tails: clipping pays
    lo, hi = mse_range(x, "uint8", steps=100)
    # reference: the same grid alpha * [min, max] searched with numpy (asymmetric uint8)
    xs = x.double().numpy()
    mn, mx = xs.min(), xs.max()
    errors = []
    for i in range(1, 101):
        a = i / 100
        s = a * (mx - mn) / 255
        z = np.clip(np.round(-a * mn / s), 0, 255)
        q = (np.clip(np.round(xs / s) + z, 0, 255) - z) * s
        errors.append(((q - xs) ** 2).mean())
    best = (int(np.argmin(errors)) + 1) / 100
    assert (lo, hi) == pytest.approx((best * mn, best * mx), rel=1e-5)
    assert best < 1.0  # the tails are clipped


def test_entropy_keeps_uniform_range_and_clips_outliers():
    gen = torch.Generator().manual_seed(2)
    uniform = torch.rand(50_000, generator=gen)
    lo, hi = entropy_range(uniform)
    assert lo == 0.0 and hi == pytest.approx(uniform.max().item(), rel=0.02)
    gauss = torch.cat([torch.randn(50_000, generator=gen), torch.tensor([40.0])])
    lo, hi = entropy_range(gauss)
    assert lo == -hi and 2.0 < hi < 10.0  # symmetric threshold well inside the outlier


def test_entropy_matches_naive_kl_reference():
    """The vectorised KL search equals a direct loop over thresholds (TensorRT's algorithm)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20_000, generator=gen).abs()
    bins, levels = 512, 255
    _, hi = entropy_range(x, bins=bins, candidates=bins)
    hist = np.histogram(x.double().numpy(), bins=bins, range=(0, x.max().item()))[0].astype(np.float64)
    best, best_kl = None, math.inf
    for i in list(range(levels, bins)) + [bins]:
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        q = np.zeros(i)
        edges = np.floor(np.linspace(0, i, levels + 1)).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            chunk = hist[a:b]
            nz = chunk > 0
            if nz.any():
                q[a:b][nz] = chunk.sum() / nz.sum()
        pn, qn = p / p.sum(), q / q.sum()
        m = pn > 0
        kl = float((pn[m] * np.log(pn[m] / np.maximum(qn[m], 1e-12))).sum())
        if kl < best_kl:
            best, best_kl = i, kl
    assert hi == pytest.approx(best * x.max().item() / bins, rel=1e-3)


def test_fake_quantize_round_trip_error_bound():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(10_000, generator=gen) * 3
    q = qparams_from_range(x.min().item(), x.max().item(), "uint8")
    err = (fake_quantize(x, q) - x).abs().max().item()
    assert err <= q.scale / 2 + 1e-6  # inside the range the error is at most half a step


def test_per_channel_weight_quantization_hand_computed_and_bounded():
    w = torch.tensor([[1.0, -0.5, 0.25], [-4.0, 2.0, 1.0]])
    scales = symmetric_weight_scales(w)
    torch.testing.assert_close(scales, torch.tensor([1.0 / 127, 4.0 / 127]))
    q = quantize_weight(w, scales)
    assert q.dtype == torch.int8
    assert q.tolist() == [[127, -64, 32], [-127, 64, 32]]  # round(63.5) = 64 (half to even: 64), 31.75 -> 32
    err = (q.float() * scales[:, None] - w).abs()
    assert (err <= scales[:, None] / 2 + 1e-7).all()
