"""Plots answer one question each (numbered points, fitted accuracy axis, artefacts, one panel per
runtime and batch size, log scales), report.html is self-contained, the one-line summary is right."""

import re

from torchslim.report.html import render_html
from torchslim.report.markdown import render_markdown
from torchslim.report.plots import accuracy_limits, close, figures, points, svg_text
from torchslim.report.schema import LatencyPoint, RunReport, Snapshot, StepReport
from torchslim.report.summary import headline


def _snap(label, size, accuracy, ort_ms=(1.0, 10.0), macs=400_000):
    latency = [LatencyPoint("onnxruntime", bs, 2, ms, ms) for bs, ms in zip((1, 16), ort_ms)]
    latency += [LatencyPoint("eager", bs, 2, 3 * ms, 3 * ms) for bs, ms in zip((1, 16), ort_ms)]
    return Snapshot(label, size // 4, macs, 2 * macs, size, 100, latency=latency, accuracy=accuracy)


def _demo_like() -> RunReport:
    """original -> prune (29%, not fine-tuned) -> finetune -> codec (file) -> ptq (int8 ONNX)."""
    original = _snap("original", 250_000, 0.979)
    pruned = _snap("after prune.channels", 100_000, 0.291, (0.8, 8.0), 200_000)
    tuned = _snap("after finetune", 100_000, 0.973, (0.8, 8.0), 200_000)
    coded = _snap("after codec.encode", 100_000, 0.973, (0.8, 8.0), 200_000)
    coded.file_bytes = 6_600
    quant = _snap("after quant.ptq", 25_000, 0.972, (0.25, 2.0), 200_000)
    steps = [
        StepReport(1, "prune.channels", {}, original, pruned, 6.0, 2.0, 0.1),
        StepReport(2, "finetune", {}, pruned, tuned, 6.0, -2.0, 0.1, details={"train_loss": [0.5, 0.2]}),
        StepReport(3, "codec.encode", {}, tuned, coded, 0.0, None, 0.1,
                   details={"path": "runs/demo/model.tsc"}),
        StepReport(4, "quant.ptq", {}, coded, quant, 0.2, 39.0, 0.1, details={"onnx_size_bytes": 35_000}),
    ]
    return RunReport({"origin": {"name": "lenet5"}}, {}, original, steps, {"name": "mnist5k"})


def test_points_are_numbered_states_plus_the_deployable_files():
    pts = points(_demo_like())
    assert [(p.number, p.label) for p in pts] == [
        ("0", "original"), ("1", "after prune.channels (not fine-tuned)"), ("2", "after finetune"),
        ("3", "after codec.encode"), ("4", "after quant.ptq"),
        ("3f", "model.tsc (step 3)"), ("4q", "int8 ONNX file (step 4)")]
    assert [p.size_bytes for p in pts if p.artefact] == [6_600, 35_000]


def test_accuracy_axis_is_fitted_to_the_states_that_matter():
    low, high = accuracy_limits(_demo_like())
    # original 97.9 and final 97.2 (+ everything within 5 points); the 29.1% state is off axis.
    assert 96.5 < low < 97.2 and 97.9 < high < 98.5


def test_figures_one_latency_panel_per_runtime_and_batch_and_log_size_axis():
    figs = figures(_demo_like())
    try:
        assert sorted(figs) == ["accuracy_vs_latency", "accuracy_vs_macs", "accuracy_vs_size"]
        panels = [ax for ax in figs["accuracy_vs_latency"].axes if ax.get_visible()]
        assert sorted(ax.get_title() for ax in panels) == [
            "eager, batch 1", "eager, batch 16", "onnxruntime, batch 1", "onnxruntime, batch 16"]
        size_ax = figs["accuracy_vs_size"].axes[0]
        assert size_ax.get_xscale() == "log"  # 6.4 KiB .. 244 KiB spans > 8x
        assert figs["accuracy_vs_macs"].axes[0].get_xscale() == "linear"  # 2x only
        legend = [t.get_text() for t in figs["accuracy_vs_size"].legends[0].get_texts()]
        assert "1: after prune.channels (not fine-tuned), 29.1% (off axis)" in legend
        assert "3f: model.tsc (step 3), 97.3%" in legend
        # Points that coincide (2 and 3: same size and accuracy) share one label, not two overprinted.
        labels = [t.get_text() for t in size_ax.texts]
        assert "2,3" in labels and "2" not in labels
        assert svg_text(figs["accuracy_vs_macs"]).startswith("<svg")
    finally:
        close(figs)


def test_headline_is_one_line_with_speed_size_and_accuracy():
    assert headline(_demo_like()) == ("4x faster in ONNX Runtime at batch 1, 5x at batch 16, 10x smaller "
                                      "(38x as the compressed file), -0.7 points top-1")


def test_headline_says_slower_when_slower():
    report = _demo_like()
    report.steps[-1].after = _snap("after quant.ptq", 250_000, 0.979, (2.0, 10.0))
    assert headline(report).startswith("0.5x as fast (slower) in ONNX Runtime at batch 1, 1x at batch 16")


def test_headline_marks_an_unreliable_timing():
    report = _demo_like()
    report.initial.latency[1].reliable = False  # onnxruntime batch 16
    assert headline(report).startswith("4x faster in ONNX Runtime at batch 1, 5x (unreliable) at batch 16, ")
    assert "| original | 62.5 k | 400 k | 244 KiB | - | 1.000 | 10.000 (unreliable) | 3.000 |" in render_markdown(report)


def test_html_is_self_contained_with_tables_plots_and_summary():
    report = _demo_like()
    figs = figures(report)
    try:
        page = render_html(report, {name: svg_text(fig) for name, fig in figs.items()})
    finally:
        close(figs)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3 and "<table>" in page
    assert headline(report) in page
    # Nothing fetched: no scripts, stylesheets, images or fonts by URL (SVG namespaces are not fetches).
    assert not re.search(r"<script|<link|<img|@import|url\((?!#)", page)  # url(#clip) is in-page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert page.index("Before and after every step") < page.index("<svg") < page.index("<h2>Steps</h2>")
