"""FitNets: hints for thin deep nets (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets").

A *hint* layer h of the teacher guides a *guided* layer g of the student. A regressor r with
weights W_r maps the guided output to the hint's shape, and stage 1 minimises (paper, eq. 3)

    L_HT(W_guided, W_r) = (1/2) || u_h(x) - r(v_g(x); W_r) ||^2 / n_h

over the student's weights up to the guided layer and W_r only, averaged over the batch.
Dividing the paper's squared norm by the hint's element count n_h = C_h H_h W_h (as common
implementations do with a mean-squared error) makes one learning rate work across layer
sizes: with the raw sum a 16x10x10 LeNet hint has a loss ~2,700 at start and SGD at lr 1e-3
kills the student's ReLUs. Stage 2 trains the whole student with knowledge distillation
(``kd.py``). The regressor is discarded after stage 1.

Regressor (paper, section 2.2): for feature maps (B, C_g, H_g, W_g) -> (B, C_h, H_h, W_h) a
convolution with kernel (H_g - H_h + 1, W_g - W_h + 1), no padding, which has far fewer
weights than a fully connected regressor; for vectors (B, D_g) -> (B, D_h) a Linear layer;
any other pair of shapes is flattened and joined by a Linear layer.
"""

from __future__ import annotations

import math
import torch
from torch import nn
from torch.utils.data import Dataset

from torchslim.distill.common import WithHelpers, probe_batch, seeded, teacher_eval, teacher_logits
from torchslim.distill.taps import FeatureTap
from torchslim.errors import UserError
from torchslim.train import StepContext, TrainHistory, fit


def make_regressor(guided: torch.Tensor, hint: torch.Tensor) -> nn.Module:
    """A module mapping a guided feature batch like ``guided`` to the shape of ``hint``."""
    if guided.dim() == 4 and hint.dim() == 4:
        (_, c_g, h_g, w_g), (_, c_h, h_h, w_h) = guided.shape, hint.shape
        if h_g < h_h or w_g < w_h:
            raise UserError(
                f"fitnets: guided layer output {h_g}x{w_g} is smaller than the hint's {h_h}x{w_h}; "
                "choose an earlier guided layer or a later hint layer"
            )
        return nn.Conv2d(c_g, c_h, kernel_size=(h_g - h_h + 1, w_g - w_h + 1))
    if guided.dim() == 2 and hint.dim() == 2:
        return nn.Linear(guided.shape[1], hint.shape[1])
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(guided.shape[1:]), math.prod(hint.shape[1:])))


def hint_loss(regressed: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """(1/2) ||u_h - r(v_g)||^2 / n_h (Romero et al., eq. 3, per hint element), mean over the batch.

    regressed, hint: (B, ...) with the same number of elements; n_h = elements per example.
    """
    if regressed.numel() != hint.numel():
        raise UserError(f"fitnets: regressor output {tuple(regressed.shape)} does not match hint {tuple(hint.shape)}")
    diff = (regressed.reshape(hint.shape) - hint).flatten(1)
    return 0.5 * diff.pow(2).mean()


def params_feeding(model: nn.Module, output: torch.Tensor) -> set[int]:
    """ids of the trainable parameters of ``model`` that ``output`` depends on (by autograd)."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(output.sum(), params, allow_unused=True)
    return {id(p) for p, g in zip(params, grads, strict=True) if g is not None}


def train_hints_(
    student: nn.Module,
    teacher: nn.Module,
    train_data: Dataset,
    *,
    hint_layer: str,
    guided_layer: str,
    epochs: int,
    seed: int = 0,
    progress: bool = False,
    **fit_kwargs: object,
) -> tuple[TrainHistory, dict[str, object]]:
    """FitNets stage 1, in place: train the student up to ``guided_layer`` (and a fresh
    regressor) so that r(guided output) matches the teacher's ``hint_layer`` output.

    Parameters after the guided layer are frozen for the stage (so DistributedDataParallel
    sees no unused parameters) and unfrozen after. ``fit_kwargs`` go to ``fit`` (lr, ...).
    Returns the stage's history and JSON details (shapes, regressor type, hint loss).
    """
    modes = [(m, m.training) for m in student.modules()]
    with teacher_eval(teacher), FeatureTap(teacher, [hint_layer], "hint_layer") as t_tap, \
            FeatureTap(student, [guided_layer], "guided_layer") as s_tap:
        probe = probe_batch(train_data, student)
        teacher_logits(teacher, probe)
        hint = t_tap[hint_layer]
        student.eval()
        student(probe)
        guided = s_tap[guided_layer]
        with seeded(seed):
            regressor = make_regressor(guided, hint).to(guided.device)
        used = params_feeding(student, guided)
        for m, training in modes:
            m.training = training
        frozen = [p for p in student.parameters() if p.requires_grad and id(p) not in used]
        wrapper = WithHelpers(student, {"regressor": regressor})

        def loss(ctx: StepContext) -> torch.Tensor:
            teacher_logits(teacher, ctx.inputs)
            return hint_loss(regressor(s_tap[guided_layer]), t_tap[hint_layer])

        for p in frozen:
            p.requires_grad_(False)
        try:
            history = fit(wrapper, train_data, epochs=epochs, seed=seed, progress=progress, loss_fn=loss,
                          **fit_kwargs)  # type: ignore[arg-type]
        finally:
            for p in frozen:
                p.requires_grad_(True)
    details = {
        "hint_shape": list(hint.shape[1:]),
        "guided_shape": list(guided.shape[1:]),
        "regressor": type(regressor).__name__ if not isinstance(regressor, nn.Sequential) else "Flatten+Linear",
        "stage1_trained_params": int(sum(p.numel() for p in student.parameters() if id(p) in used)),
        "stage1_hint_loss": [round(v, 6) for v in history.train_loss],
    }
    return history, details


def default_layers(hint_layer: str | None, guided_layer: str | None) -> tuple[str, str]:
    """(hint, guided): the guided layer defaults to the hint layer's name (same architecture,
    e.g. a pruned copy of the teacher)."""
    if not hint_layer:
        raise UserError("fitnets: field 'hint_layer' (a teacher module name) is required")
    return hint_layer, guided_layer or hint_layer

