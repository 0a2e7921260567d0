"""Claim: compression-aware training (nuclear norm, proximal; Alvarez & Salzmann 2017) loses less
accuracy than plain training when both are truncated by SVD to the same MACs; and what the
regulariser costs in training time. ResNet-20 on MNIST-5k (32x32).

    .venv/bin/python benchmarks/lowrank_aware.py     # ~8 min on 2 shared cores

Both models train --epochs (default 3) epochs with the same seed, lr and schedule; the aware
ones (one per --strengths value) add the proximal step (singular value soft-thresholding)
after every SGD step. All are then truncated with ``lowrank.svd`` (conv (O, I*k*k) unfolding, greedy allocation to the MACs
target, no latency guard) and scored without and with --finetune-epochs of fine-tuning. One intra-op thread (see lowrank_decompose.py for why).
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


def truncate(model: torch.nn.Module, ratio: float, data, finetune_epochs: int) -> tuple[float, float, float | None]:
    """(model MACs vs the unfactorized model, accuracy, accuracy after fine-tuning or None)."""
    x1 = data.test.tensors[0][:1]
    svd = {"technique": "lowrank.svd", "rank_method": "macs", "macs_ratio": ratio, "latency_check": False}
    cut = compress(model, [svd], data=data, measure=MeasureConfig(runtimes=()), progress=False).model
    macs = profile_model(cut, (x1,)).macs / profile_model(model, (x1,)).macs
    acc = evaluate(cut, data.test)
    tuned = None
    if finetune_epochs:
        fit(cut, data.train, epochs=finetune_epochs, lr=0.01, seed=0, progress=False)
        tuned = evaluate(cut, data.test)
    return macs, acc, tuned


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--strengths", default="0.15,0.3,0.5")
    parser.add_argument("--macs-ratios", default="0.5,0.35")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    data = load_dataset("mnist5k", image_size=32)
    ratios = [float(r) for r in args.macs_ratios.split(",")]

    torch.manual_seed(0)
    plain = create_model("resnet20", in_channels=1, num_classes=10)
    plain_s = sum(fit(plain, data.train, epochs=args.epochs, lr=0.05, seed=0, progress=False).epoch_seconds)
    plain.eval()
    config = RegularizeConfig()
    layers = regularized_layers(plain, config)
    full = {n: min(m.weight.shape[0], m.weight[0].numel()) for n, m in layers}
    plain_ranks = energy_ranks(layers, config.energy)
    rows = [("plain", None, plain, evaluate(plain, data.test), plain_ranks, plain_s, None)]
    for strength in (float(v) for v in args.strengths.split(",")):
        torch.manual_seed(0)
        init = create_model("resnet20", in_channels=1, num_classes=10)
        step = {"technique": "lowrank.regularize", "strength": strength, "epochs": args.epochs, "lr": 0.05,
                "mode": "proximal"}
        run = compress(init, [step], data=data, measure=MeasureConfig(runtimes=()), progress=False)
        reg = run.report.steps[0].details
        ranks = {n: e["rank_after"] for n, e in reg["layers"].items()}
        rows.append(("aware", strength, run.model, run.report.steps[0].after.accuracy, ranks,
                     reg["train_seconds"], reg["regularizer_seconds"]))

    print(f"## ResNet-20, MNIST-5k 32x32, {args.epochs} epochs each, same seed; compression-aware = "
          "proximal nuclear norm (lowrank.regularize); truncation = lowrank.svd to the MACs target "
          f"(greedy over all conv/linear layers, no latency guard); FT = +{args.finetune_epochs} epoch fine-tuning")
    header = "| training | strength | test acc. | mean rank/full at 99% energy | train s | regulariser s (share) |"
    for r in ratios:
        header += f" acc. @ {r} MACs | +FT @ {r} MACs |"
    print(header)
    print("|" + "---|" * (6 + 2 * len(ratios)))
    for kind, strength, model, acc, ranks, seconds, reg_s in rows:
        frac = sum(ranks[n] / full[n] for n in full) / len(full)
        share = "-" if reg_s is None else f"{reg_s:.1f} ({100 * reg_s / seconds:.1f}%)"
        line = f"| {kind} | {strength if strength is not None else '-'} | {acc:.4f} | {frac:.3f} | {seconds:.0f} | {share} |"
        for r in ratios:
            macs, cut_acc, tuned = truncate(model, r, data, args.finetune_epochs)
            line += f" {cut_acc:.4f} | {'-' if tuned is None else f'{tuned:.4f}'} |"
        print(line, flush=True)
    print("\nper-layer rank at 99% energy, plain -> strongest regulariser (of full):")
    print(", ".join(f"{n}: {rows[0][4][n]}->{rows[-1][4][n]}/{full[n]}" for n in full))
    print(f"\nmachine: {platform.platform()}, torch {torch.__version__}, threads 1, total {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
