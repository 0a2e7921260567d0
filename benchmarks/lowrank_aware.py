"""Claim: compression-aware training (nuclear norm, proximal; Alvarez & Salzmann 2017) loses less
accuracy than plain training when both are truncated by SVD to the same MACs; and what the
regulariser costs in training time. ResNet-20 on MNIST-5k (32x32).

    .venv/bin/python benchmarks/lowrank_aware.py     # ~5 min on 2 shared cores

Both models train --epochs (default 3) epochs with the same seed, lr and schedule; the aware
one adds the proximal step (singular value soft-thresholding) after every SGD step. Both are
then truncated with ``lowrank.svd`` (conv (O, I*k*k) unfolding, greedy allocation to the MACs
target, no latency guard) and scored without fine-tuning, and after --finetune-epochs of
fine-tuning at the first target. One intra-op thread (see lowrank_decompose.py for why).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from torchslim import MeasureConfig, compress, create_model, load_dataset
from torchslim.lowrank.regularize import RegularizeConfig, energy_ranks, regularized_layers
from torchslim.profiler import profile_model
from torchslim.train import evaluate, fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--strength", type=float, default=0.05)
    parser.add_argument("--macs-ratios", default="0.5,0.35")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    data = load_dataset("mnist5k", image_size=32)
    x1 = data.test.tensors[0][:1]

    torch.manual_seed(0)
    plain = create_model("resnet20", in_channels=1, num_classes=10)
    plain_s = sum(fit(plain, data.train, epochs=args.epochs, lr=0.05, seed=0, progress=False).epoch_seconds)

    torch.manual_seed(0)
    init = create_model("resnet20", in_channels=1, num_classes=10)
    step = {"technique": "lowrank.regularize", "strength": args.strength, "epochs": args.epochs, "lr": 0.05,
            "mode": "proximal"}
    run = compress(init, [step], data=data, measure=MeasureConfig(runtimes=()), progress=False)
    aware, reg = run.model, run.report.steps[0].details
    aware_s = reg["train_seconds"]

    energy = RegularizeConfig().energy
    plain_ranks = energy_ranks(regularized_layers(plain.eval(), RegularizeConfig()), energy)
    full = {n: e["full_rank"] for n, e in reg["layers"].items()}
    plain_frac = sum(plain_ranks[n] / full[n] for n in full) / len(full)
    print("## training (ResNet-20, MNIST-5k 32x32, "
          f"{args.epochs} epochs, proximal nuclear norm strength {args.strength})")
    print(f"| model | test acc. | mean rank / full rank at {energy:.0%} energy | train s | regulariser s |")
    print("|---|---|---|---|---|")
    print(f"| plain | {evaluate(plain, data.test):.4f} | {plain_frac:.3f} | {plain_s:.0f} | - |")
    print(f"| compression-aware | {evaluate(aware, data.test):.4f} | {reg['mean_rank_fraction_after']:.3f} | "
          f"{aware_s:.0f} | {reg['regularizer_seconds']:.1f} ({100 * reg['regularizer_time_fraction']:.1f}% of training) |")
    print(f"training-time ratio aware / plain: {aware_s / plain_s:.2f}x (same run, shared machine)")

    print("\nper-layer rank at 99% energy (plain -> aware / full):")
    print(", ".join(f"{n}: {plain_ranks[n]}->{reg['layers'][n]['rank_after']}/{full[n]}" for n in full))

    base_macs = profile_model(plain, (x1,)).macs
    print("\n## truncation by lowrank.svd to the same MACs (no latency guard)")
    print("| MACs target (selected layers) | model MACs vs original | plain: acc. | aware: acc. | "
          f"plain: +{args.finetune_epochs} ep FT | aware: +{args.finetune_epochs} ep FT |")
    print("|---|---|---|---|---|---|")
    for i, ratio in enumerate(float(r) for r in args.macs_ratios.split(",")):
        cells, tuned = [], []
        for model in (plain, aware):
            svd = {"technique": "lowrank.svd", "rank_method": "macs", "macs_ratio": ratio, "latency_check": False}
            cut = compress(model, [svd], data=data, measure=MeasureConfig(runtimes=()), progress=False).model
            macs = profile_model(cut, (x1,)).macs / base_macs
            cells.append(evaluate(cut, data.test))
            if i == 0 and args.finetune_epochs:
                fit(cut, data.train, epochs=args.finetune_epochs, lr=0.01, seed=0, progress=False)
                tuned.append(f"{evaluate(cut, data.test):.4f}")
            else:
                tuned.append("-")
        print(f"| {ratio} | {macs:.3f} | {cells[0]:.4f} | {cells[1]:.4f} | {tuned[0]} | {tuned[1]} |")
    print(f"\nmachine: {platform.platform()}, torch {torch.__version__}, threads 1, total {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
