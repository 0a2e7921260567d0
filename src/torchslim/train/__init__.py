"""The one deterministic training loop every compression technique reuses.

``fit`` trains in place and returns a :class:`TrainHistory`; ``evaluate`` gives top-1
accuracy. Hooks receive a :class:`StepContext` (model, inputs, targets, outputs, epoch, step):

- ``loss_fn(ctx) -> Tensor`` replaces the default cross-entropy (with label smoothing);
- each of ``extra_losses`` ``(ctx) -> Tensor`` is added to the loss (regularisers,
  distillation terms);
- each of ``after_step`` ``(ctx) -> None`` runs after ``optimizer.step()`` (mask
  enforcement, proximal steps).

Example (a distillation term and pruning-mask enforcement)::

    def distill(ctx):  # Hinton et al. 2015, temperature T = 4
        with torch.no_grad():
            soft = F.softmax(teacher(ctx.inputs) / 4, dim=1)
        return 16 * F.kl_div(F.log_softmax(ctx.outputs / 4, dim=1), soft, reduction="batchmean")

    def keep_pruned(ctx):  # pruned weights stay zero after every step
        with torch.no_grad():
            ctx.model.fc.weight.mul_(mask)

    history = fit(model, splits.train, epochs=2, extra_losses=[distill],
                  after_step=[keep_pruned], val_data=splits.val)
    accuracy = evaluate(model, splits.test)  # fraction in [0, 1]

Runs unchanged under ``torchrun --nproc_per_node=N`` (DistributedDataParallel, gloo).
"""

from torchslim.train.config import TrainConfig
from torchslim.train.context import LossFn, StepContext, StepHook, TrainHistory
from torchslim.train.evaluate import evaluate
from torchslim.train.loop import fit, steps_per_epoch
from torchslim.train.losses import cross_entropy

__all__ = [
    "LossFn",
    "StepContext",
    "StepHook",
    "TrainConfig",
    "TrainHistory",
    "cross_entropy",
    "evaluate",
    "fit",
    "steps_per_epoch",
]
