"""Run pruned Linear layers on torch's sparse CSR kernels where that is measured to be faster.

A dense GEMM does the same work whatever the sparsity; ``torch.sparse.addmm`` on a CSR weight
(compressed sparse row: ``crow_indices`` (out+1,), ``col_indices`` and ``values`` (nnz,))
does work proportional to the non-zeros but with irregular memory access, so it wins only
for sparse enough, large enough layers and batches (on this machine: LeNet-300's 784x300 fc1
at 5% density is ~4x faster at batch 64 and about even at batch 1). The step therefore times
both kernels interleaved (:func:`torchslim.core.timing.compare_interleaved`) for every selected
Linear at most ``max_density`` dense, at the configured batch size, and swaps in
:class:`SparseLinear` only where CSR is at least ``min_speedup`` faster. What was measured goes
into the step details (``decisions``); a recipe pins a layer's choice with
``decisions: {fc1: true, fc2: false}`` so a rerun on another machine builds the same model (a
pinned layer is neither timed nor filtered by ``max_density``).

:class:`SparseLinear` keeps the dense ``weight`` parameter (so saving, the codec and training
are unchanged) and builds the CSR copy lazily for inference. Training, autograd, tracing
and export (torch.export / ONNX / fx / dispatch modes such as the FLOP counter) take the dense
path, so exported graphs and MAC counts are those of the dense layer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.config import TechniqueConfig
from torchslim.core.context import Context
from torchslim.core.modules import set_submodule
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.core.select import select_layers
from torchslim.core.timing import compare_interleaved, decide, pinned_names
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
    """A selected Linear at most ``max_density`` dense is swapped if CSR is measured
    ``min_speedup`` x faster at ``batch_size`` over ``rounds`` interleaved rounds;
    ``decisions`` pins the choice per layer name (true: CSR, false: dense)."""

    batch_size: int = 1
    min_speedup: float = 1.1
    max_density: float = 0.3
    rounds: int = 5
    decisions: dict[str, bool] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.rounds < 1:
            raise ValueError(f"fields 'batch_size' and 'rounds' must be >= 1, got {self.batch_size}, {self.rounds}")
        if self.min_speedup <= 0:
            raise ValueError(f"field 'min_speedup' must be > 0, got {self.min_speedup}")
        if not 0.0 < self.max_density <= 1.0:
            raise ValueError(f"field 'max_density' must be in (0, 1], got {self.max_density}")


@register_technique("prune.sparse_linear", SparseLinearConfig)
def sparse_linear_(model: nn.Module, config: SparseLinearConfig, ctx: Context) -> HandlerResult:
    """Swap pruned Linear layers to sparse CSR kernels where measured faster (or pinned)."""
    candidates = {n: m for n, m in select_layers(model, (nn.Linear,), config.include, config.exclude)
                  if type(m) is nn.Linear}
    pinned_names(config.decisions, set(candidates))
    layers: dict[str, dict] = {}
    decisions: dict[str, dict] = {}
    step_warnings: list[str] = []
    for name, layer in candidates.items():
        density = (layer.weight != 0).float().mean().item()
        layers[name] = {"density_pct": round(100 * density, 2), "sparse": False}
        if density > config.max_density and name not in config.decisions:
            continue
        new = SparseLinear(layer.in_features, layer.out_features, layer.bias is not None).to(layer.weight.device)
        new.load_state_dict(layer.state_dict())
        x = torch.randn(config.batch_size, layer.in_features).to(layer.weight)  # the layer's device and dtype

        def measure(layer: nn.Module = layer, new: nn.Module = new, x: torch.Tensor = x):
            with torch.inference_mode():
                return compare_interleaved(lambda: layer(x), lambda: new(x), rounds=config.rounds)

        if decide(name, config.decisions, measure, config.min_speedup, decisions, step_warnings):
            set_submodule(model, name, new)
            layers[name]["sparse"] = True
    return HandlerResult(model, step_warnings, {"layers": layers, "decisions": decisions, "batch_size": config.batch_size})
