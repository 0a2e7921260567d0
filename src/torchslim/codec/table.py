"""The per-layer table of Deep Compression (Han et al. 2016, Tables 2-3): weights kept,
bits, original and compressed size, rate; plus each stream's coded size against its
order-0 Shannon entropy, so the gap left by Huffman (and closed by rANS) is visible.

One row per weight tensor (>= 2 dims); biases and buffers are summed into one "other" row
and the header (spec + framing + digest) into another, so the rows add up to the file size.
"""

from __future__ import annotations

from typing import Any

from torchslim.codec.tensor import TensorStats


def _per_nz(bits: float | None, nnz: int) -> float | None:
    return None if bits is None or not nnz else round(bits / nnz, 3)


def layer_rows(stats: list[TensorStats]) -> list[dict[str, Any]]:
    rows = []
    for s in stats:
        if s.ndim >= 2 or s.name.endswith("hashed_weight"):
            w, i = s.streams.get("weights", {}), s.streams.get("index", {})
            rows.append({
                "layer": s.name.removesuffix(".weight"),
                "weights": s.numel,
                "nonzero": s.nnz,
                "weights_pct": round(100 * s.nnz / max(s.numel, 1), 2),
                "bits": s.bits,
                "index_bits": s.index_bits,
                "layout": s.layout,
                "original_bytes": s.original_bytes,
                "compressed_bytes": s.compressed_bytes,
                "rate": round(s.original_bytes / max(s.compressed_bytes, 1), 2),
                "weight_bits_per_nz": _per_nz(8 * w["stored_bytes"], s.nnz) if w else None,
                "weight_entropy_bits_per_nz": _per_nz(w.get("entropy_bits"), s.nnz) if w else None,
                "index_bits_per_nz": _per_nz(8 * i["stored_bytes"], s.nnz) if i else None,
                "index_entropy_bits_per_nz": _per_nz(i.get("entropy_bits"), s.nnz) if i else None,
                "coders": "/".join(st["coder"] for st in (i, w) if st),
            })
    return rows


def stream_totals(stats: list[TensorStats]) -> dict[str, float]:
    """Bits of all streams (payload + code table, without the few framing bytes) under each
    coder, under the coder chosen per stream, and their total order-0 entropy."""
    keys = ("entropy_bits", "packed_bits", "huffman_bits", "rans_bits")
    total = {k: 0.0 for k in keys}
    total["chosen_bits"] = total["stored_bits"] = 0.0
    for s in stats:
        for st in s.streams.values():
            for k in keys:
                total[k] += st[k]
            total["chosen_bits"] += st[f"{st['coder']}_bits"]
            total["stored_bits"] += 8 * st["stored_bytes"]
    return {k: round(v, 1) for k, v in total.items()}


def summarize(stats: list[TensorStats], overhead_bytes: int, dense_bytes: int) -> dict[str, Any]:
    """Rows, the "other" and "header" rows, totals, and the Markdown table."""
    rows = layer_rows(stats)
    other = [s for s in stats if not (s.ndim >= 2 or s.name.endswith("hashed_weight"))]
    file_bytes = sum(s.compressed_bytes for s in stats) + overhead_bytes
    weights = sum(r["weights"] for r in rows)
    nonzero = sum(r["nonzero"] for r in rows)
    out = {
        "layers": rows,
        "other_tensors": {"count": len(other), "original_bytes": sum(s.original_bytes for s in other),
                          "compressed_bytes": sum(s.compressed_bytes for s in other)},
        "header_bytes": overhead_bytes,
        "file_bytes": file_bytes,
        "dense_fp32_bytes": dense_bytes,
        "rate": round(dense_bytes / max(file_bytes, 1), 2),
        "weights": weights,
        "nonzero_weights": nonzero,
        "weights_pct": round(100 * nonzero / max(weights, 1), 2),
        "pruning_rate": round(weights / max(nonzero, 1), 2),
        "streams": stream_totals(stats),
    }
    out["markdown"] = render(out)
    return out


def _f(x: Any) -> str:
    return "-" if x is None else str(x)


def render(summary: dict[str, Any]) -> str:
    head = ["layer", "weights", "weights %", "bits", "index bits", "original B", "compressed B", "rate",
            "weight bits/nz (entropy)", "index bits/nz (entropy)", "coders"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["layers"]:
        lines.append("| " + " | ".join([
            r["layer"], str(r["weights"]), f"{r['weights_pct']}%", _f(r["bits"]), _f(r["index_bits"]),
            str(r["original_bytes"]), str(r["compressed_bytes"]), f"{r['rate']}x",
            f"{_f(r['weight_bits_per_nz'])} ({_f(r['weight_entropy_bits_per_nz'])})",
            f"{_f(r['index_bits_per_nz'])} ({_f(r['index_entropy_bits_per_nz'])})", r["coders"]]) + " |")
    o = summary["other_tensors"]
    lines.append(f"| other ({o['count']} tensors) | | | | | {o['original_bytes']} | {o['compressed_bytes']} | | | | |")
    lines.append(f"| header + digest | | | | | | {summary['header_bytes']} | | | | |")
    lines.append(f"| **total** | {summary['weights']} | {summary['weights_pct']}% | | | "
                 f"{summary['dense_fp32_bytes']} | {summary['file_bytes']} | **{summary['rate']}x** | | | |")
    st = summary["streams"]
    if st["stored_bits"]:
        lines += ["", f"Streams (payload + code tables): best coder per stream {st['chosen_bits'] / 8:.0f} B; "
                  f"order-0 entropy {st['entropy_bits'] / 8:.0f} B; all-Huffman {st['huffman_bits'] / 8:.0f} B; "
                  f"all-rANS {st['rans_bits'] / 8:.0f} B; fixed-width {st['packed_bits'] / 8:.0f} B; "
                  f"{st['stored_bits'] / 8:.0f} B stored with framing."]
    return "\n".join(lines) + "\n"
