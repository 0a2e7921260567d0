"""Recovery training, the same everywhere: the ``finetune`` step and :func:`finetune_`, the one
helper every technique calls for its nested ``finetune:`` section.

```yaml
steps:
  - prune.channels: {target_macs: 2.0, finetune: {epochs: 2, distill: kd}}   # nested
  - finetune: {epochs: 2, lr: 0.01, distill: kd, temperature: 4, alpha: 0.9}  # or a step
```
The teacher is ``ctx.teacher``: the caller's model before any step of the run (``compress``
never modifies it). Trains on ``ctx.data.train``, scores ``ctx.data.val`` after each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.distill.config import FinetuneConfig
from torchslim.distill.trainer import run_distillation
from torchslim.errors import UserError
from torchslim.train import LossFn, StepHook
from torchslim.train.config import TrainConfig


def finetune_(model: nn.Module, config: TrainConfig | None, ctx: Context, *, after_step: Sequence[StepHook] = (),
              extra_losses: Sequence[LossFn] = (), trained: nn.Module | None = None) -> dict[str, Any]:
    """Train ``model`` in place per ``config`` (nothing when None or 0 epochs) on
    ``ctx.data.train``, distilling from ``ctx.teacher`` if ``config.distill`` asks.

    ``trained``: the module handed to the training loop when it differs from ``model`` (a
    wrapper holding helper parameters); ``model`` is what the teacher's hooks refer to.
    Returns the JSON details for the step report (empty when nothing was trained).
    """
    if config is None or config.epochs == 0:
        return {}
    if ctx.data is None:
        raise UserError("finetune: needs training data (add a 'data' section to the recipe, or data= to compress)")
    if ctx.device is not None:  # layers a technique just created (int8, factorised, hashed) start on the CPU
        (trained or model).to(ctx.device)
    teacher = ctx.teacher if config.distill != "none" else None
    if config.distill != "none" and teacher is None:
        raise UserError(f"finetune: distill={config.distill} needs the original model as teacher (ctx.teacher is None)")
    _, details = run_distillation(trained or model, teacher, ctx.data.train, config,
                                  val_data=getattr(ctx.data, "val", None),
                                  seed=ctx.seed, progress=ctx.progress, after_step=after_step,
                                  extra_losses=extra_losses)
    return details


@register_technique("finetune", FinetuneConfig)
def finetune_step_(model: nn.Module, config: FinetuneConfig, ctx: Context) -> HandlerResult:
    """Fine-tune on the training split, optionally distilling (kd, l2, fitnets, adversarial) from the original model."""
    warnings: list[str] = []
    if config.distill != "none" and ctx.teacher is model:
        warnings.append("finetune: the teacher is the model being trained; distilling from itself")
    if config.epochs == 0:
        warnings.append("finetune: epochs is 0, nothing trained")
    details = finetune_(model, config, ctx)
    return HandlerResult(model.eval(), warnings, details)
