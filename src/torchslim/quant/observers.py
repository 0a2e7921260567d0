"""Range observers and quantization parameters (scale, zero point) for int8 / uint8.

Affine quantization (Jacob et al. 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", eq. 1): ``r = s * (q - z)`` with
``q = clamp(round(r / s) + z, qmin, qmax)``.

- asymmetric uint8 on a range [lo, hi] (widened to include 0 so that 0 is exact):
  ``s = (hi - lo) / 255``, ``z = clamp(round(-lo / s), 0, 255)``;
- symmetric int8 on [-a, a]: ``s = a / 127``, ``z = 0`` (weights use the restricted range
  [-127, 127], so u8 x s8 products cannot saturate 16-bit accumulators on AVX2).

The observers choose the range from calibration data:

- ``minmax``: the observed min and max;
- ``percentile``: the ``percentile``-th and ``(100 - percentile)``-th percentiles (McKinstry
  et al. 2019 clip outliers the same way);
- ``mse``: the clipping range, a fraction ``alpha`` of min-max on a 100-point grid, that
  minimises the mean squared quantize-dequantize error (Banner et al. 2019 solve the same
  objective analytically for Gaussian/Laplace data; here it is searched on the data);
- ``entropy``: TensorRT's KL calibration (Migacz 2017, "8-bit Inference with TensorRT"):
  a 2048-bin histogram of |x| and the threshold whose 128-level (255 for non-negative data)
  re-binning has the smallest KL divergence from the clipped reference distribution.

Hand-written because PyTorch's own observers (``torch.ao.quantization``) are deprecated and
ONNX Runtime's calibrators work on ONNX graphs, not on modules; the formulas are theirs.
Observers keep exact min/max and a bounded, strided sample of the values they see (at most
``max_samples``), so memory stays flat whatever the calibration set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

ObserverName = Literal["minmax", "percentile", "mse", "entropy"]
ActDtype = Literal["uint8", "int8"]
OBSERVERS = ("minmax", "percentile", "mse", "entropy")


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantization parameters: ``r = scale * (q - zero_point)``, q in [qmin, qmax]."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int


def qrange(dtype: ActDtype) -> tuple[int, int]:
    return (0, 255) if dtype == "uint8" else (-128, 127)


def qparams_from_range(lo: float, hi: float, dtype: ActDtype = "uint8") -> QParams:
    """Scale and zero point for [lo, hi]: asymmetric for uint8, symmetric for int8 (see module doc)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmin, qmax = qrange(dtype)
    if dtype == "int8":
        amax = max(-lo, hi)
        scale = amax / 127.0 if amax > 0 else 1.0
        return QParams(scale, 0, qmin, qmax)
    scale = (hi - lo) / float(qmax - qmin) if hi > lo else 1.0
    zero_point = int(min(max(round(-lo / scale), qmin), qmax))
    return QParams(scale, zero_point, qmin, qmax)


def fake_quantize(x: torch.Tensor, q: QParams) -> torch.Tensor:
    """Quantize-dequantize ``x`` with ``q`` (float in, float out)."""
    return (torch.clamp(torch.round(x / q.scale) + q.zero_point, q.qmin, q.qmax) - q.zero_point) * q.scale


def symmetric_weight_scales(weight: torch.Tensor, axis: int = 0, bits: int = 8) -> torch.Tensor:
    """Per-channel symmetric scales ``max|W_c| / (2^(bits-1) - 1)`` along ``axis``; shape (C,)."""
    dims = [d for d in range(weight.dim()) if d != axis]
    amax = weight.detach().abs().amax(dim=dims) if dims else weight.detach().abs()
    levels = 2 ** (bits - 1) - 1
    return torch.where(amax > 0, amax / levels, torch.ones_like(amax)).float()


def quantize_weight(weight: torch.Tensor, scales: torch.Tensor, axis: int = 0, bits: int = 8) -> torch.Tensor:
    """Round ``weight / scale`` to integers in [-(2^(bits-1) - 1), 2^(bits-1) - 1] (int8 tensor)."""
    shape = [1] * weight.dim()
    shape[axis] = -1
    levels = 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(weight.detach() / scales.view(shape)), -levels, levels).to(torch.int8)


class Observer:
    """Accumulates statistics of the tensors passed to :meth:`update`; :meth:`qparams` picks a range."""

    def __init__(self, method: ObserverName = "minmax", dtype: ActDtype = "uint8", percentile: float = 99.99,
                 max_samples: int = 1 << 18) -> None:
        if method not in OBSERVERS:
            raise ValueError(f"unknown observer {method!r}; known: {', '.join(OBSERVERS)}")
        self.method, self.dtype, self.percentile, self.max_samples = method, dtype, percentile, max_samples
        self.min = math.inf
        self.max = -math.inf
        self._samples: list[torch.Tensor] = []
        self._count = 0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().float().flatten()
        if x.numel() == 0:
            return
        self.min = min(self.min, x.min().item())
        self.max = max(self.max, x.max().item())
        if self.method != "minmax":
            budget = self.max_samples - self._count
            if budget <= 0:
                return
            stride = max(1, math.ceil(x.numel() / budget))
            kept = x[::stride].to("cpu", copy=True)  # range searches run on the CPU, whatever the model's device
            self._samples.append(kept)
            self._count += kept.numel()

    @property
    def samples(self) -> torch.Tensor:
        return torch.cat(self._samples) if self._samples else torch.zeros(0)

    def range(self) -> tuple[float, float]:
        """The chosen clipping range [lo, hi]."""
        if self.min > self.max:
            raise ValueError("observer saw no data")
        if self.method == "minmax":
            return self.min, self.max
        values = self.samples
        if self.method == "percentile":
            return percentile_range(values, self.percentile)
        if self.method == "mse":
            return mse_range(values, self.dtype)
        return entropy_range(values)

    def qparams(self) -> QParams:
        return qparams_from_range(*self.range(), self.dtype)


def percentile_range(values: torch.Tensor, percentile: float) -> tuple[float, float]:
    """[(100 - p)-th, p-th] percentile of ``values``, linearly interpolated (numpy's default).

    Only the tails are needed, so ``topk`` (linear time) replaces a full sort.
    """
    n = values.numel()
    pos = (1.0 - percentile / 100.0) * (n - 1)  # distance of both quantiles from the ends
    k = min(n, int(math.floor(pos)) + 2)
    frac = pos - math.floor(pos)

    def tail(largest: bool) -> float:
        top = torch.topk(values.float(), k, largest=largest, sorted=True).values.double()
        a, b = top[int(math.floor(pos))], top[min(int(math.floor(pos)) + 1, k - 1)]
        return (a + frac * (b - a)).item()

    return tail(largest=False), tail(largest=True)


def mse_range(values: torch.Tensor, dtype: ActDtype = "uint8", steps: int = 100) -> tuple[float, float]:
    """Clip range alpha * [min, max], alpha in {1/steps, ..., 1}, minimising the QDQ mean squared error."""
    lo, hi = values.min().item(), values.max().item()
    best, best_err = (lo, hi), math.inf
    for i in range(steps, 0, -1):
        alpha = i / steps
        q = qparams_from_range(alpha * lo, alpha * hi, dtype)
        err = (fake_quantize(values, q) - values).pow(2).mean().item()
        if err < best_err:
            best, best_err = (alpha * lo, alpha * hi), err
    return best


def _kl(p: torch.Tensor, q: torch.Tensor) -> float:
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    return float((p[mask] * torch.log(p[mask] / q[mask].clamp_min(1e-12))).sum())


def entropy_range(values: torch.Tensor, bins: int = 2048, candidates: int = 128) -> tuple[float, float]:
    """KL-divergence calibration (Migacz 2017): threshold T minimising KL(P || Q).

    P: histogram of |x| over [0, max|x|] cut at bin i, outliers added to bin i-1;
    Q: P merged into ``levels`` equal groups then spread back uniformly over each group's
    non-empty bins. levels = 128 (sign takes a bit) or 255 for non-negative data.
    Exact zeros are left out of the histogram. Returns [-T, T], or [0, T] for non-negative data. Thresholds are tried every
    ``(bins - levels) / candidates`` bins (TensorRT tries every bin; the KL curve is smooth).
    """
    nonneg = values.min().item() >= 0
    levels = 255 if nonneg else 128
    absv = values.abs().double()
    # Exact zeros (ReLU's spike) are exact at any threshold: left in, the re-binning would spread
    # the spike over its group and push T down to where the spike's group is one bin wide.
    absv = absv[absv > 0]
    if absv.numel() == 0:
        return 0.0, 0.0
    amax = absv.max().item()
    if amax == 0:
        return 0.0, 0.0
    hist = torch.histc(absv, bins=bins, min=0.0, max=amax)
    bin_width = amax / bins
    best_i, best_kl = bins, math.inf
    step = max(1, (bins - levels) // candidates)
    for i in list(range(levels, bins, step)) + [bins]:
        p = hist[:i].clone()
        p[i - 1] += hist[i:].sum()
        ref = hist[:i]
        edges = torch.linspace(0, i, levels + 1).floor().long()
        group = torch.bucketize(torch.arange(i), edges[1:], right=True).clamp_max(levels - 1)
        nonzero = (ref > 0).double()
        sums = torch.zeros(levels, dtype=torch.float64).index_add_(0, group, ref)
        counts = torch.zeros(levels, dtype=torch.float64).index_add_(0, group, nonzero)
        q = (sums / counts.clamp_min(1))[group] * nonzero
        kl = _kl(p, q)
        if kl < best_kl:
            best_i, best_kl = i, kl
    threshold = best_i * bin_width
    return (0.0, threshold) if nonneg else (-threshold, threshold)
