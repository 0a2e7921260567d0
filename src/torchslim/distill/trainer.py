"""``distill_``: train a student from a teacher with one of the methods, through
``torchslim.train.fit`` (so it also runs under torchrun / DistributedDataParallel).

>>> from torchslim.distill import distill_
>>> distill_(student, teacher, splits, method="kd", epochs=20, temperature=4, alpha=0.9)

The teacher is used in eval mode under no_grad and its train/eval flags are restored after;
its weights are never touched. ``method="none"`` is plain supervised training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from torchslim.data.access import as_splits
from torchslim.distill.adversarial import AdversarialDistiller
from torchslim.distill.common import WithHelpers, probe_batch, teacher_eval, teacher_logits
from torchslim.distill.fitnets import default_layers, train_hints_
from torchslim.distill.kd import kd_loss
from torchslim.distill.l2 import logit_l2_loss
from torchslim.errors import UserError
from torchslim.train import LossFn, StepContext, StepHook, TrainHistory, fit
from torchslim.train.config import TrainConfig


def run_distillation(
    student: nn.Module,
    teacher: nn.Module | None,
    train_data: Dataset,
    config: TrainConfig,
    *,
    val_data: Dataset | None = None,
    seed: int = 0,
    progress: bool = False,
    after_step: Sequence[StepHook] = (),
    extra_losses: Sequence[LossFn] = (),
) -> tuple[TrainHistory, dict[str, Any]]:
    """Train ``student`` in place per ``config``; returns the (final stage's) history and
    JSON details for the step report. ``after_step`` / ``extra_losses`` are the caller's
    hooks (mask enforcement, regularisers), applied in every stage."""
    method = config.distill
    if method != "none" and teacher is None:
        raise UserError(f"distill={method} needs a teacher model (none given)")
    common = dict(config.fit_kwargs(), seed=seed, progress=progress, val_data=val_data,
                  extra_losses=list(extra_losses))
    guard = list(after_step)  # fit itself stops on a non-finite loss
    details: dict[str, Any] = {"distill": method, "epochs": config.epochs, "lr": config.effective_lr}
    if method == "none":
        history = fit(student, train_data, after_step=guard, **common)
    elif method in ("kd", "l2", "fitnets"):
        assert teacher is not None
        with teacher_eval(teacher):
            if method == "fitnets":
                hint, guided = default_layers(config.hint_layer, config.guided_layer)
                hint_lr = config.hint_lr if config.hint_lr is not None else config.effective_lr
                stage1 = dict(common, lr=hint_lr, val_data=None, epochs=config.hint_epochs,
                              after_step=list(after_step))
                _, hint_details = train_hints_(student, teacher, train_data, hint_layer=hint, guided_layer=guided,
                                               **stage1)
                details.update(hint_layer=hint, guided_layer=guided, hint_epochs=config.hint_epochs, **hint_details)

            def loss(ctx: StepContext) -> Any:
                z_t = teacher_logits(teacher, ctx.inputs)
                if method == "l2":
                    return logit_l2_loss(ctx.outputs, z_t)
                return kd_loss(ctx.outputs, z_t, ctx.targets, config.temperature, config.alpha)

            history = fit(student, train_data, loss_fn=loss, after_step=guard, **common)
        if method != "l2":
            details.update(temperature=config.temperature, alpha=config.alpha)
    else:  # adversarial
        assert teacher is not None
        with teacher_eval(teacher):
            adv = AdversarialDistiller(
                student, teacher, probe_batch(train_data, student), feature_layer=config.feature_layer,
                student_feature_layer=config.student_feature_layer, hidden=config.discriminator_hidden,
                lr=config.discriminator_lr, dropout=config.feature_dropout,
                adversarial_weight=config.adversarial_weight, sample_weight=config.sample_weight, seed=seed,
            )
            try:
                model = WithHelpers(student, adv.helpers) if adv.helpers else student
                history = fit(model, train_data, loss_fn=adv.loss,
                              after_step=[*guard, adv.step_discriminator], **common)
            finally:
                adv.close()
        details.update(adv.details())
    details["train_loss"] = [round(v, 6) for v in history.train_loss]
    if history.val_accuracy:
        details["val_accuracy"] = [round(v, 4) for v in history.val_accuracy]
    return history, details


def distill_(
    student: nn.Module,
    teacher: nn.Module | None,
    data: Any,
    method: str = "kd",
    *,
    val_data: Dataset | None = None,
    seed: int = 0,
    progress: bool = False,
    **fields: Any,
) -> nn.Module:
    """Train ``student`` in place from ``teacher`` and return it.

    data: a ``DataSplits`` or a mapping ``{"train": ..., "val": ...}`` (trains on train, scores val
    after each epoch), or one Dataset / DataLoader of (input, label) pairs (labels unused by l2
    and adversarial).
    method: none | kd | l2 | fitnets | adversarial. ``fields``: any :class:`TrainConfig`
    field (epochs, lr, temperature, alpha, hint_layer, ...); a wrong name or value raises
    UserError naming the field.
    """
    from torchslim.core.config import from_mapping

    config = from_mapping(TrainConfig, {"distill": method, **fields}, where="distill_")
    if isinstance(data, Mapping):  # {"train": ..., "val": ...} as compress takes it
        data = as_splits(data, "distill_: data")
    train_data = data.train if hasattr(data, "train") else data
    if val_data is None and hasattr(data, "val"):
        val_data = data.val
    run_distillation(student, teacher, train_data, config, val_data=val_data, seed=seed, progress=progress)
    return student
