"""Accuracy of ResNet-20 on MNIST-5k (32x32) pruned to 2x fewer MACs and fine-tuned (issue 3).

Trains the zoo's ResNet-20 on the bundled 5,000 real MNIST digits (3,500 train / 500 val /
1,000 test, zero-padded to 32x32, 1 channel), then for each importance criterion prunes a
copy to ``target_macs=2`` (uniform scope) with ``prune_channels_`` and fine-tunes it for
``--finetune`` epochs with the ``finetune`` step (lr 0.01; the same training a nested
``finetune:`` section runs). Every criterion starts from the same trained weights and prunes
to the same MAC budget, so the table compares criteria at equal MACs.

    .venv/bin/python benchmarks/prune_accuracy.py [--epochs 6] [--finetune 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time
import warnings

import torch

from torchslim.core import Context
from torchslim.data import load_dataset
from torchslim.distill.finetune import finetune_step_
from torchslim.profiler import profile_model
from torchslim.prune import prune_channels_
from torchslim.train import evaluate, fit
from torchslim.zoo import create_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--finetune", type=int, default=2)
    parser.add_argument("--criteria", default="l1,bn_scale,fpgm,taylor,fisher,random")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--target-macs", type=float, default=2.0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = load_dataset("mnist5k", image_size=32, channels=1)
    torch.manual_seed(0)
    model = create_model("resnet20", in_channels=1).eval()
    x = data.test.tensors[0][:1]
    fit(model, data.train, epochs=args.epochs, lr=0.1, seed=0, progress=False)
    base_acc = evaluate(model, data.test)
    base_macs = profile_model(model, (x,)).macs
    # The fair reference: the unpruned model fine-tuned for the same extra epochs.
    ref = copy.deepcopy(model)
    recovery = {"epochs": args.finetune, "lr": 0.01}
    finetune_step_(ref, recovery, Context((x,), data=data, seed=1, progress=False))
    ref_acc = evaluate(ref, data.test)
    rows = []
    for criterion in args.criteria.split(","):
        work = copy.deepcopy(model)
        t = time.perf_counter()
        prune_channels_(work, {"importance": criterion, "target_macs": args.target_macs, "num_batches": 4},
                        Context((x,), data=data, seed=0, progress=False))
        prune_s = time.perf_counter() - t
        pruned_acc = evaluate(work, data.test)
        # A separate step rather than a nested finetune section, to score the cut first.
        finetune_step_(work, recovery, Context((x,), data=data, seed=1, progress=False))
        macs = profile_model(work, (x,)).macs
        rows.append((criterion, base_macs / macs, pruned_acc, evaluate(work, data.test), prune_s))
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {args.threads}")
    print(f"# ResNet-20 on MNIST-5k 32x32 (1 channel): {args.epochs} training epochs (SGD, lr 0.1, cosine), "
          f"fine-tune {args.finetune} epochs (lr 0.01); test split of 1,000 digits; total {time.perf_counter() - started:.0f} s")
    print(f"# unpruned: {100 * base_acc:.2f}% ({base_macs / 1e6:.1f} M MACs); unpruned + {args.finetune} more epochs: "
          f"{100 * ref_acc:.2f}%")
    print("| importance | MACs reduction | acc. right after pruning | acc. after fine-tune | vs unpruned (points) | prune s |")
    print("|---|---:|---:|---:|---:|---:|")
    for criterion, red, pa, fa, ps in rows:
        print(f"| {criterion} | {red:.2f} | {100 * pa:.2f} | {100 * fa:.2f} | {100 * (fa - base_acc):+.2f} | {ps:.1f} |")


if __name__ == "__main__":
    main()
