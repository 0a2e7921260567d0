"""Deep Compression on LeNet-300-100 and LeNet-5 (bundled MNIST-5k) beside Han et al. 2016.

For each model, in one run:
- baseline: the dense model trained for the whole budget, per seed (pretrain + prune + share epochs);
- compressed: pretrain, then the built-in ``deep_compression`` recipe's steps:
  ``prune.magnitude`` (AGP, masked retraining), ``quant.kmeans`` (k-means + centroid
  fine-tuning), ``codec.encode`` (the real .tsc file, read back and evaluated), so both see
  the same number of training epochs;
- the same final model written in "paper mode" (all streams Huffman, fixed 5-bit fc / 4-bit
  conv relative indices) to show what the extra coder choices buy;
- eager latency of the dense baseline vs the decoded compressed model with pruned Linears on
  sparse CSR kernels (``prune.sparse_linear`` with every Linear pinned to CSR), batch 1 and
  64, medians measured side by side.

    .venv/bin/python benchmarks/deep_compression_lenet.py            # both models, ~6-8 min on 2 cores
    .venv/bin/python benchmarks/deep_compression_lenet.py --models lenet5
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import torch

from torchslim.codec import decode_model
from torchslim.core.config import TechniqueConfig
from torchslim.core.registry import config_for
from torchslim.data import load_dataset
from torchslim.pipeline import compress
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.profiler import measure_latency
from torchslim.recipes.schema import load_recipe
from torchslim.train import evaluate, fit
from torchslim.zoo import create_model

# Han et al. 2016, Tables 1-3 (full 60k MNIST, Caffe LeNet-5 with 431k weights).
PAPER = {
    "lenet300": {"top1_base": 98.36, "top1_comp": 98.42, "rate": 40, "pruning": 12, "bytes": "1070 KB -> 27 KB"},
    "lenet5": {"top1_base": 99.20, "top1_comp": 99.26, "rate": 39, "pruning": 12, "bytes": "1720 KB -> 44 KB"},
}

# LeNet-5 (recipe: the LeNet-300-100 one with these steps): fewer retraining epochs, 4-bit sharing.
LENET5_STEPS = [
    ("prune.magnitude", {"criterion": "global", "sparsity": 0.93, "schedule": "agp", "ramp_fraction": 0.5,
                         "finetune": {"epochs": 9, "lr": 0.05}}),
    ("quant.kmeans", {"bits": 4, "init": "linear", "float16": True, "finetune": {"epochs": 1, "lr": 0.001}}),
    ("codec.encode", {}),
]
LR = 0.05


def pipeline(name: str) -> tuple[int, list[TechniqueConfig]]:
    """(pretraining epochs, the three steps): LeNet-300-100 runs the built-in recipe as shipped."""
    if name == "lenet300":
        recipe = load_recipe("deep_compression")
        assert recipe.train.lr == LR and recipe.model.name == "zoo:lenet300"
        return recipe.train.epochs, list(recipe.steps)
    return 10, [config_for(step, fields) for step, fields in LENET5_STEPS]


def latency_ratio(dense: torch.nn.Module, sparse: torch.nn.Module, x: torch.Tensor, batch: int) -> tuple[float, float]:
    a = measure_latency(dense, (x,), runtime="eager", threads=1, batch_size=batch, repeats=200, max_seconds=3)
    b = measure_latency(sparse, (x,), runtime="eager", threads=1, batch_size=batch, repeats=200, max_seconds=3)
    return a.latency_ms_p50, b.latency_ms_p50


def run(name: str, data, out: Path, seed: int, extras: bool) -> dict:
    pretrain_epochs, (prune, kmeans, encode) = pipeline(name)
    budget = pretrain_epochs + prune.finetune.epochs + kmeans.finetune.epochs
    torch.manual_seed(seed)
    baseline = create_model(name)
    start = time.perf_counter()
    fit(baseline, data.train, epochs=budget, lr=LR, progress=False, seed=seed)
    base_seconds = time.perf_counter() - start
    base_acc = evaluate(baseline, data.test)

    torch.manual_seed(seed)
    model = create_model(name)
    start = time.perf_counter()
    fit(model, data.train, epochs=pretrain_epochs, lr=LR, progress=False, seed=seed)
    path = out / f"{name}_seed{seed}.tsc"
    steps = [prune, kmeans, dataclasses.replace(encode, path=str(path))]
    result = compress(model, steps, data=data, measure=MeasureConfig(runtimes=()), progress=False, seed=seed)
    comp_seconds = time.perf_counter() - start
    prune_step, share_step, encode_step = result.report.steps
    table = encode_step.details
    decoded = decode_model(path)
    record = {
        "name": name, "seed": seed, "budget": budget, "base_acc": base_acc, "base_seconds": base_seconds,
        "comp_seconds": comp_seconds, "pruned_acc": prune_step.after.accuracy,
        "pruning_rate": prune_step.details["pruning_rate"], "shared_acc": share_step.after.accuracy,
        "decoded_acc": evaluate(decoded, data.test), "table": table,
    }
    if not extras:
        return record
    paper_mode = compress(decoded, [("codec.encode", {"path": str(out / f"{name}_paper.tsc"), "coder": "huffman",
                                                         "index_bits": 5, "conv_index_bits": 4})],
                          measure=MeasureConfig(runtimes=()), progress=False).report.steps[0].details
    pruned_linears = {n: True for n, m in decoded.named_modules()  # CSR wherever at most 30% dense
                      if type(m) is torch.nn.Linear and (m.weight != 0).float().mean() <= 0.3}
    sparse = compress(decoded, [("prune.sparse_linear", {"decisions": pruned_linears})],
                      measure=MeasureConfig(runtimes=()), progress=False).model
    x = data.test.tensors[0][:1]
    lat = {b: latency_ratio(baseline.eval(), sparse, x, b) for b in (1, 64)}
    return {**record, "paper_mode": paper_mode, "latency": lat}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="lenet300,lenet5")
    parser.add_argument("--seeds", default="0,1,2", help="seeds; test-set noise on 1,000 digits is ~0.5 points")
    parser.add_argument("--out", default=None, help="directory for the .tsc files (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    out = Path(args.out or tempfile.mkdtemp(prefix="deep_compression_"))
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {name: [run(name, data, out, seed, extras=i == 0) for i, seed in enumerate(seeds)]
            for name in args.models.split(",")}
    results = [r[0] for r in runs.values()]

    print(f"\nmachine: {platform.platform()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"1 thread; data: mnist5k (3,500 train / 1,000 test); files in {out}\n")
    print(f"Mean over seeds {seeds} (per-seed values in brackets); same epochs for dense and compressed.\n")
    print("| model | epochs (both) | top-1 dense | top-1 pruned | top-1 compressed (decoded file) | drop (points) "
          "| pruning | file bytes | rate vs fp32 | paper: top-1 dense -> compressed, pruning, rate |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def cell(rs: list[dict], key: str) -> str:
        values = [100 * r[key] for r in rs]
        return f"{sum(values) / len(values):.1f}% ({', '.join(f'{v:.1f}' for v in values)})"

    for name, rs in runs.items():
        p = PAPER[name]
        drops = [100 * (r["base_acc"] - r["decoded_acc"]) for r in rs]
        files = [r["table"]["file_bytes"] for r in rs]
        rates = [r["table"]["rate"] for r in rs]
        print(f"| {name} | {rs[0]['budget']} | {cell(rs, 'base_acc')} | {cell(rs, 'pruned_acc')} | "
              f"{cell(rs, 'decoded_acc')} | {sum(drops) / len(drops):+.2f} ({', '.join(f'{d:+.1f}' for d in drops)}) | "
              f"{rs[0]['pruning_rate']:.1f}x | {rs[0]['table']['dense_fp32_bytes']} -> {min(files)}..{max(files)} | "
              f"**{sum(rates) / len(rates):.1f}x** ({min(rates)}..{max(rates)}) | "
              f"{p['top1_base']}% -> {p['top1_comp']}%, {p['pruning']}x, {p['rate']}x ({p['bytes']}) |")
    print("\nCoders (same final model): bytes of the file")
    print("| model | auto (packed/Huffman/rANS per stream, index width per layer) | paper mode (Huffman, 5/4-bit index) "
          "| streams: best per stream / order-0 entropy / all-Huffman / all-rANS / fixed-width (bytes) |")
    print("|---|---|---|---|")
    for r in results:
        s = r["table"]["streams"]
        print(f"| {r['name']} | {r['table']['file_bytes']} ({r['table']['rate']}x) | {r['paper_mode']['file_bytes']} "
              f"({r['paper_mode']['rate']}x) | {s['chosen_bits'] / 8:.0f} / {s['entropy_bits'] / 8:.0f} / "
              f"{s['huffman_bits'] / 8:.0f} / {s['rans_bits'] / 8:.0f} / {s['packed_bits'] / 8:.0f} |")
    print("\nEager latency, dense baseline vs decoded compressed model with CSR Linears (p50 ms, 1 thread)")
    print("| model | batch | dense | sparse CSR | speedup |")
    print("|---|---|---|---|---|")
    for r in results:
        for b, (d, s) in r["latency"].items():
            print(f"| {r['name']} | {b} | {d:.4f} | {s:.4f} | {d / s:.2f}x |")
    for r in results:
        print(f"\n{r['name']} per-layer table (compressed file, seed {r['seed']}):\n")
        print(r["table"]["markdown"])
        print(f"time: baseline training {r['base_seconds']:.0f} s, compressed pipeline {r['comp_seconds']:.0f} s")


if __name__ == "__main__":
    main()
