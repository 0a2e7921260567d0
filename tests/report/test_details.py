"""report.md says what each step did, rendered from the step details by their shape."""

from torchslim.report.details import details_markdown, training_sentence
from torchslim.report.markdown import render_markdown
from torchslim.report.schema import RunReport, Snapshot, StepReport


def _snap(label: str, accuracy: float = 0.9) -> Snapshot:
    return Snapshot(label, 1000, 2000, 4000, 4096, 100, accuracy=accuracy)


def _step(technique: str, details: dict, warnings: list[str] | None = None, index: int = 1) -> StepReport:
    return StepReport(index, technique, {}, _snap("x"), _snap("y"), 0.5, 20.0, 0.1, warnings or [], details)


def test_training_record_is_one_sentence_with_first_last_and_best():
    record = {"epochs": 3, "distill": "kd", "lr": 0.01, "train_loss": [1.5, 0.75, 0.25],
              "val_accuracy": [0.9, 0.97, 0.96]}
    assert training_sentence(record) == ("3 epoch(s) (distill kd, lr 0.01): loss 1.5 -> 0.25; "
                                         "val top-1 90.0% -> 96.0% (best 97.0%)")
    assert training_sentence({"epochs": 0}) is None


def test_pruning_step_shows_channels_removed_per_layer_and_its_fine_tuning():
    lines = details_markdown(_step("prune.channels", {
        "macs_reduction": 2.07, "removed_channels": {"conv1": 2, "conv2": 6, "fc1": 45, "fc2": 31},
        "finetune": {"epochs": 2, "distill": "kd", "train_loss": [0.5, 0.25], "val_accuracy": [0.95, 0.98]}}))
    text = "\n".join(lines)
    assert "- fine-tuned 2 epoch(s) (distill kd): loss 0.5 -> 0.25; val top-1 95.0% -> 98.0% (best 98.0%)" in lines
    assert "- macs_reduction: 2.07" in lines
    assert "Channels removed per layer:" in text
    assert "| conv2 | 6 |" in text and "| fc1 | 45 |" in text


def test_int8_step_shows_integer_and_float_ops_and_what_stayed_float():
    lines = details_markdown(_step("quant.ptq", {
        "quantized_layers": 2, "float_layers": ["head"],
        "ort_ops": {"QLinearConv": 2, "Conv": 1, "QuantizeLinear": 1, "Transpose": 2}},
        warnings=["head: int8 measured slower, kept float"]))
    assert "- ONNX Runtime runs integer ops: 2 QLinearConv; float compute ops: 1 Conv; " \
           "other: 1 QuantizeLinear, 2 Transpose" in lines
    assert "- float_layers (1): head" in lines
    assert "- warning: head: int8 measured slower, kept float" in lines


def test_per_layer_records_become_a_table_with_a_column_per_field():
    lines = details_markdown(_step("lowrank.svd", {"decisions": {
        "fc1": {"chosen": False, "speedup": 0.5, "rank": 50},
        "fc2": {"chosen": True, "speedup": 1.25, "rank": 8}}}))
    assert lines[-4:] == ["| layer | chosen | speedup | rank |", "|---|---|---|---|",
                          "| fc1 | no | 0.5 | 50 |", "| fc2 | yes | 1.25 | 8 |"]


def test_a_step_with_its_own_markdown_does_not_repeat_its_tables():
    step = _step("codec.encode", {"file_bytes": 6639, "layers": [{"layer": "fc", "rate": 3.5}],
                                  "markdown": "| layer | rate |\n|---|---|\n| fc | 3.5x |"})
    report = RunReport({}, {}, _snap("original"), [step])
    md = render_markdown(report)
    assert "- file_bytes: 6,639" in md
    assert md.count("| fc |") == 1  # the step's own table only


def test_a_step_without_details_says_so():
    md = render_markdown(RunReport({}, {}, _snap("original"), [_step("fold.bn", {})]))
    assert "### Step 1: `fold.bn`\n\n- (no details recorded)" in md
