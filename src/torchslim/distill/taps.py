"""Feature taps: record intermediate activations of named submodules with forward hooks.

Distillation methods that match features (FitNets hints, the adversarial discriminator's
inputs) read them here, so no model's ``forward()`` is ever edited. A tap spec is a module
name from ``model.named_modules()`` (``"features.4"``: that module's output) or the name
followed by ``":input"`` (``"classifier.4:input"``: the first positional input of that
module, e.g. the features a classifier head sees).

Written by hand: ``torch.fx``'s ``create_feature_extractor`` would re-trace the model (and
fails on data-dependent control flow); a hook works on any module and under
DistributedDataParallel, whose wrapper runs the same submodules.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import torch
from torch import nn

from torchslim.errors import UserError

INPUT_SUFFIX = ":input"


def find_module(model: nn.Module, name: str, role: str = "layer") -> nn.Module:
    """``model.get_submodule(name)`` with a one-line UserError naming the layer."""
    modules = dict(model.named_modules())
    if name not in modules or not name:
        sample = ", ".join(n for n in list(modules)[1:9] if n)
        raise UserError(f"{role} '{name}': no such module (modules include: {sample} ...)")
    return modules[name]


def last_linear_input(model: nn.Module) -> str:
    """Tap spec of the features entering the model's last ``nn.Linear`` (its classifier)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise UserError(f"{type(model).__name__} has no nn.Linear: name the feature layer explicitly")
    return names[-1] + INPUT_SUFFIX


class FeatureTap:
    """Records the output (or ``":input"``) of each named submodule on every forward.

    >>> with FeatureTap(model, ["features.4", "classifier.4:input"]) as tap:
    ...     logits = model(x)
    ...     hint = tap["features.4"]          # (B, C, H, W), attached to the graph
    Values are overwritten by each forward; hooks are removed by ``close()`` / on exit.
    """

    def __init__(self, model: nn.Module, specs: Sequence[str], role: str = "layer") -> None:
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        for spec in dict.fromkeys(specs):  # de-duplicated, order kept
            name, is_input = (spec[: -len(INPUT_SUFFIX)], True) if spec.endswith(INPUT_SUFFIX) else (spec, False)
            module = find_module(model, name, role)
            if is_input:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(spec)))
            else:
                self._handles.append(module.register_forward_hook(self._hook(spec)))

    def _store(self, spec: str, value: object) -> None:
        if isinstance(value, tuple) and value:
            value = value[0]
        if not isinstance(value, torch.Tensor):
            raise UserError(f"layer '{spec}': produces {type(value).__name__}, not a tensor")
        self.features[spec] = value

    def _hook(self, spec: str):  # noqa: ANN202 - torch hook signature
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            self._store(spec, output)

        return hook

    def _pre_hook(self, spec: str):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple) -> None:
            self._store(spec, args)

        return hook

    def __getitem__(self, spec: str) -> torch.Tensor:
        try:
            return self.features[spec]
        except KeyError:
            raise UserError(f"layer '{spec}': did not run in the forward pass") from None

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
