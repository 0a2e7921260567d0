"""The ``finetune`` recipe step: recover accuracy after a compression step, optionally by
distilling from the original model.

```yaml
steps:
  - prune.channels: {...}
  - finetune: {epochs: 2, lr: 0.01, distill: kd, temperature: 4, alpha: 0.9}
```
The teacher is ``ctx.teacher``: the caller's model before any step of the run (``compress``
never modifies it). Trains on ``ctx.data.train``, scores ``ctx.data.val`` after each epoch.
"""

from __future__ import annotations

from torch import nn

from torchslim.core.context import Context
from torchslim.core.registry import HandlerResult, register_technique
from torchslim.distill.config import FinetuneConfig
from torchslim.distill.trainer import run_distillation
from torchslim.errors import UserError


@register_technique("finetune", FinetuneConfig)
def finetune_(model: nn.Module, config: FinetuneConfig, ctx: Context) -> HandlerResult:
    """Fine-tune on the training split, optionally distilling (kd, l2, fitnets, adversarial) from the original model."""
    if ctx.data is None:
        raise UserError("finetune: needs training data (add a 'data' section to the recipe)")
    teacher = ctx.teacher if config.distill != "none" else None
    if config.distill != "none" and teacher is None:
        raise UserError(f"finetune: distill={config.distill} needs the original model as teacher (ctx.teacher is None)")
    warnings: list[str] = []
    if teacher is model:
        warnings.append("finetune: the teacher is the model being trained; distilling from itself")
    _, details = run_distillation(model, teacher, ctx.data.train, config, val_data=ctx.data.val,
                                  seed=ctx.seed, progress=ctx.progress)
    return HandlerResult(model.eval(), warnings, details)
