"""Run pruned Linear layers on torch's sparse CSR kernels where that is measured to be faster.

A dense GEMM does the same work whatever the sparsity; ``torch.sparse.addmm`` on a CSR weight
(compressed sparse row: ``crow_indices`` (out+1,), ``col_indices`` and ``values`` (nnz,))
does work proportional to the non-zeros but with irregular memory access, so it wins only
for sparse enough, large enough layers and batches (on this machine: LeNet-300's 784x300 fc1
at 5% density is ~4x faster at batch 64 and about even at batch 1). The step therefore times
both kernels side by side for every pruned Linear at the configured batch size and swaps in
:class:`SparseLinear` only where CSR is at least ``min_speedup`` faster, reporting the times
either way.

:class:`SparseLinear` keeps the dense ``weight`` parameter (so saving, the codec and training
are unchanged) and builds the CSR copy lazily for inference. Training, autograd, tracing
and export (torch.export / ONNX / fx / dispatch modes such as the FLOP counter) take the dense
path, so exported graphs and MAC counts are those of the dense layer.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.deepcomp.common import weight_layers
from torchslim.serialize.spec import allow_module


def _plain_inference(x: torch.Tensor) -> bool:
    if type(x) is not torch.Tensor or x.dim() != 2 or torch.is_grad_enabled():
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return False
    return torch._C._len_torch_dispatch_stack() == 0


@allow_module
class SparseLinear(nn.Linear):
    """nn.Linear whose no-grad forward on 2-D inputs uses a CSR copy of the weight."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self._csr: tuple[int, torch.Tensor] | None = None

    def csr_weight(self) -> torch.Tensor:
        version = self.weight._version
        if self._csr is None or self._csr[0] != version or self._csr[1].device != self.weight.device:
            with warnings.catch_warnings():  # "sparse CSR support is in beta": known, not the user's concern
                warnings.simplefilter("ignore", UserWarning)
                self._csr = (version, self.weight.detach().to_sparse_csr())
        return self._csr[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _plain_inference(x):
            return F.linear(x, self.weight, self.bias)
        out = torch.sparse.mm(self.csr_weight(), x.t()).t()
        return out + self.bias if self.bias is not None else out


@dataclass(frozen=True)
class SparseLinearConfig(TechniqueConfig):
    """``decide``: ``measure`` swaps a layer only if CSR is ``min_speedup`` x faster at
    ``batch_size``; ``always`` swaps every selected Linear below ``max_density``."""

    batch_size: int = 1
    min_speedup: float = 1.1
    max_density: float = 0.3
    decide: Literal["measure", "always"] = "measure"
    repeats: int = 200
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def time_us(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in microseconds (after a warm-up)."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


@register_technique("deepcomp.sparse_linear", SparseLinearConfig)
def sparse_linear_(model: nn.Module, config: SparseLinearConfig, ctx: Context) -> HandlerResult:
    """Swap pruned Linear layers to sparse CSR kernels where measured faster (latency reported either way)."""
    details: dict[str, dict] = {}
    for name, layer in weight_layers(model, ("linear",), config.include, config.exclude):
        density = (layer.weight != 0).float().mean().item()
        entry = {"density_pct": round(100 * density, 2)}
        if density <= config.max_density and type(layer) is nn.Linear:
            new = SparseLinear(layer.in_features, layer.out_features, layer.bias is not None)
            new.load_state_dict(layer.state_dict())
            if config.decide == "measure":
                x = torch.randn(config.batch_size, layer.in_features)
                with torch.inference_mode():
                    dense_us = time_us(lambda: layer(x), config.repeats)
                    csr_us = time_us(lambda: new(x), config.repeats)
                entry.update(dense_us=round(dense_us, 2), csr_us=round(csr_us, 2),
                             speedup=round(dense_us / csr_us, 3))
                swap = dense_us / csr_us >= config.min_speedup
            else:
                swap = True
            if swap:
                parent, _, child = name.rpartition(".")
                model.get_submodule(parent).add_module(child, new)
            entry["sparse"] = swap
        else:
            entry["sparse"] = False
        details[name] = entry
    ctx.invalidate_graph()
    return HandlerResult(model, [], {"layers": details, "batch_size": config.batch_size})
