"""What a step did, in Markdown, from its ``details`` (the step's own record, JSON-shaped).

Techniques record different things, so the rendering goes by shape, not by technique: a
training record (``train_loss`` / ``val_accuracy`` per epoch) becomes one sentence (first ->
last, best); a mapping of layer -> number (``removed_channels``) or layer -> record
(``decisions``, per-layer densities) and a list of records (``layers`` of the codec) become
tables; ONNX Runtime's op counts become the integer / float split; other scalars a bullet list.
A step's own ``markdown`` text is shown as it is, after this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torchslim.report.schema import StepReport

MAX_ROWS = 25  # longer tables are cut with "... N more"; report.json has them all
_SKIP = {"markdown", "onnx_path"}  # shown elsewhere, or a path of the machine it ran on
_TITLES = {
    "removed_channels": "Channels removed per layer",
    "decisions": "Decisions taken from timings",
    "layers": "Per layer",
    "sqnr_db": "SQNR per layer (dB)",
    "ort_ops": "Ops ONNX Runtime runs (optimised graph)",
}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def training_sentence(record: Mapping[str, Any]) -> str | None:
    """``2 epochs (distill kd, lr 0.01): loss 1.127 -> 0.2947; val top-1 96.8% -> 98.2% (best 98.2%)``."""
    loss = record.get("train_loss") or []
    if not loss and not record.get("val_accuracy"):
        return None
    head = f"{record.get('epochs', len(loss))} epoch(s)"
    extras = [f"{k} {_fmt(record[k])}" for k in ("distill", "lr") if k in record and record[k] not in (None, "none")]
    text = head + (f" ({', '.join(extras)})" if extras else "")
    if loss:
        text += f": loss {loss[0]:.4g} -> {loss[-1]:.4g}"
    acc = record.get("val_accuracy") or []
    if acc:
        text += (f"; val top-1 {100 * acc[0]:.1f}% -> {100 * acc[-1]:.1f}% (best {100 * max(acc):.1f}%)")
    return text


def _is_records(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, Mapping) for v in value.values())


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"| ... {len(rows) - MAX_ROWS} more | " + " | " * (len(head) - 1))
    return lines


def _records_table(records: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]]) -> list[str]:
    rows = list(records.items()) if isinstance(records, Mapping) else [(None, r) for r in records]
    columns: list[str] = []
    for _, rec in rows:
        columns += [k for k, v in rec.items() if k not in columns and not isinstance(v, (Mapping, list))]
    first = [] if isinstance(records, Sequence) else ["layer"]
    return _table(first + columns, [([] if name is None else [name]) + [rec.get(c) for c in columns]
                                    for name, rec in rows])


def _ort_ops(ops: Mapping[str, int]) -> str:
    from torchslim.quant.onnx_check import FLOAT_COMPUTE_OPS, INTEGER_OPS  # the one list of each

    def part(names: set[str]) -> str:
        return ", ".join(f"{ops[k]} {k}" for k in sorted(names)) or "none"

    integer = {k for k in ops if k in INTEGER_OPS}
    floating = {k for k in ops if k in FLOAT_COMPUTE_OPS}
    return (f"integer ops: {part(integer)}; float compute ops: {part(floating)}; "
            f"other: {part(set(ops) - integer - floating)}")


def details_markdown(step: StepReport) -> list[str]:
    """Markdown lines telling what ``step`` did (empty when it recorded nothing)."""
    details = {k: v for k, v in step.details.items() if k not in _SKIP}
    lines: list[str] = []
    own = training_sentence(details) if details.get("train_loss") else None
    if own:
        lines.append(f"- trained {own}")
    nested = details.get("finetune")
    if isinstance(nested, Mapping) and training_sentence(nested):
        lines.append(f"- fine-tuned {training_sentence(nested)}")
    said = {"epochs", "distill", "lr"} if own else set()  # already in the training sentence
    scalars = {k: v for k, v in details.items() if not isinstance(v, (Mapping, list, tuple)) and k not in said}
    lines += [f"- {k}: {_fmt(v)}" for k, v in scalars.items()]
    tables: list[str] = []
    # A step that renders its own Markdown (the codec's table) has its records shown there.
    records_shown = isinstance(step.details.get("markdown"), str)
    for key, value in details.items():
        if key in ("finetune", "train_loss", "val_accuracy", "epoch_seconds") or key in scalars or key in said:
            continue
        title = _TITLES.get(key, key.replace("_", " ").capitalize())
        if key == "ort_ops" and isinstance(value, Mapping):
            lines.append(f"- ONNX Runtime runs {_ort_ops(value)}")
        elif _is_records(value) or (isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value)):
            if not records_shown:
                tables += ["", f"{title}:", "", *_records_table(value)]
        elif isinstance(value, Mapping) and value and len(value) > 3:
            if not records_shown:
                tables += ["", f"{title}:", "", *_table(["", key.replace("_", " ")], [list(kv) for kv in value.items()])]
        elif isinstance(value, Mapping):
            lines.append(f"- {key}: " + (", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "none"))
        elif isinstance(value, (list, tuple)):
            shown = [" + ".join(map(str, v)) if isinstance(v, (list, tuple)) else _fmt(v) for v in value]
            lines.append(f"- {key} ({len(value)}): " + (", ".join(shown) or "none"))
    lines += [f"- warning: {w}" for w in step.warnings]
    return lines + tables
