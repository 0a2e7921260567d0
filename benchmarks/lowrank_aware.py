"""Claim: compression-aware training (nuclear norm, proximal; Alvarez & Salzmann 2017) loses less
accuracy than plain training when both are truncated by SVD to the same MACs; and what the
regulariser costs in training time. ResNet-20 on MNIST-5k (32x32).

    .venv/bin/python benchmarks/lowrank_aware.py     # ~8 min on 2 shared cores

Both models train --epochs (default 3) epochs with the same seed and TrainConfig (lr 0.05,
cosine); the aware ones (one per --strengths value) are ``lowrank.regularize`` with that
config as its ``finetune`` section, adding the proximal step (singular value
soft-thresholding) after every SGD step. All are then truncated with ``lowrank.svd`` (conv
(O, I*k*k) unfolding, greedy allocation to each --target-macs reduction factor, no latency
guard) and scored without and with --finetune-epochs of fine-tuning (lr 0.01). One intra-op
thread (see lowrank_decompose.py for why).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from torchslim import MeasureConfig, compress, create_model, load_dataset
from torchslim.lowrank.regularize import RegularizeConfig, energy_ranks, regularized_layers
from torchslim.profiler import profile_model
from torchslim.train import TrainConfig, evaluate, fit


def truncate(model: torch.nn.Module, target_macs: float, data, finetune_epochs: int
             ) -> tuple[float, float, float | None]:
    """(model MACs reduction vs the unfactorized model, accuracy, accuracy after fine-tuning or None)."""
    x1 = data.test.tensors[0][:1]
    svd = {"technique": "lowrank.svd", "rank_method": "macs", "target_macs": target_macs, "latency_check": False}
    cut = compress(model, [svd], data=data, measure=MeasureConfig(runtimes=()), progress=False).model
    reduction = profile_model(model, (x1,)).macs / profile_model(cut, (x1,)).macs
    acc = evaluate(cut, data.test)
    tuned = None
    if finetune_epochs:
        fit(cut, data.train, **TrainConfig(epochs=finetune_epochs, lr=0.01).fit_kwargs(), seed=0, progress=False)
        tuned = evaluate(cut, data.test)
    return reduction, acc, tuned


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--strengths", default="0.15,0.3,0.5")
    parser.add_argument("--target-macs", default="2,3", help="MACs reduction factors to truncate to")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    data = load_dataset("mnist5k", image_size=32)
    targets = [float(r) for r in args.target_macs.split(",")]
    train = TrainConfig(epochs=args.epochs, lr=0.05)

    torch.manual_seed(0)
    plain = create_model("resnet20", in_channels=1, num_classes=10)
    history = fit(plain, data.train, **train.fit_kwargs(), val_data=data.val, seed=0, progress=False)
    plain_s = sum(history.epoch_seconds)  # validation after each epoch included, as in lowrank.regularize
    plain.eval()
    config = RegularizeConfig()
    layers = regularized_layers(plain, config)
    full = {n: min(m.weight.shape[0], m.weight[0].numel()) for n, m in layers}
    plain_ranks = energy_ranks(layers, config.energy)
    rows = [("plain", None, plain, evaluate(plain, data.test), plain_ranks, plain_s, None)]
    for strength in (float(v) for v in args.strengths.split(",")):
        torch.manual_seed(0)
        init = create_model("resnet20", in_channels=1, num_classes=10)
        step = {"technique": "lowrank.regularize", "strength": strength, "mode": "proximal",
                "finetune": {"epochs": train.epochs, "lr": train.lr}}
        run = compress(init, [step], data=data, measure=MeasureConfig(runtimes=()), progress=False)
        reg = run.report.steps[0].details
        ranks = {n: e["rank_after"] for n, e in reg["layers"].items()}
        rows.append(("aware", strength, run.model, run.report.steps[0].after.accuracy, ranks,
                     reg["train_seconds"], reg["regularizer_seconds"]))

    print(f"## ResNet-20, MNIST-5k 32x32, {args.epochs} epochs each, same seed; compression-aware = "
          "proximal nuclear norm (lowrank.regularize); truncation = lowrank.svd to target_macs "
          f"(greedy over all conv/linear layers, no latency guard); FT = +{args.finetune_epochs} epoch fine-tuning")
    header = "| training | strength | test acc. | mean rank/full at 99% energy | train s | regulariser s (share) |"
    for t in targets:
        header += f" acc. @ {t:g}x fewer MACs | +FT @ {t:g}x |"
    print(header)
    print("|" + "---|" * (6 + 2 * len(targets)))
    for kind, strength, model, acc, ranks, seconds, reg_s in rows:
        frac = sum(ranks[n] / full[n] for n in full) / len(full)
        share = "-" if reg_s is None else f"{reg_s:.1f} ({100 * reg_s / seconds:.1f}%)"
        line = f"| {kind} | {strength if strength is not None else '-'} | {acc:.4f} | {frac:.3f} | {seconds:.0f} | {share} |"
        for t in targets:
            _, cut_acc, tuned = truncate(model, t, data, args.finetune_epochs)
            line += f" {cut_acc:.4f} | {'-' if tuned is None else f'{tuned:.4f}'} |"
        print(line, flush=True)
    print("\nper-layer rank at 99% energy, plain -> strongest regulariser (of full):")
    print(", ".join(f"{n}: {rows[0][4][n]}->{rows[-1][4][n]}/{full[n]}" for n in full))
    print(f"\nmachine: {platform.platform()}, torch {torch.__version__}, threads 1, total {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
