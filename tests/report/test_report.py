import json

from torchslim.report.markdown import render_markdown
from torchslim.report.schema import LatencyPoint, RunReport, Snapshot, StepReport
from torchslim.report.writer import write_report


def _report():
    first = Snapshot("original", 1000, 2000, 4000, 4096, 100, latency=[LatencyPoint("eager", 1, 2, 2.0, 3.0)],
                     accuracy=0.9)
    after = Snapshot("after fold.bn", 800, 2000, 4000, 3072, 100, latency=[LatencyPoint("eager", 1, 2, 1.0, 1.5)],
                     accuracy=0.895)
    step = StepReport(1, "fold.bn", {"exclude": []}, first, after, 1e-7, float("inf"), 0.01, ["w1"])
    return RunReport({"origin": {"name": "lenet5"}}, {"cpu_count": 2}, first, [step], {"name": "mnist5k"})


def test_summary_reductions_are_original_over_final():
    summary = _report().summary()
    assert summary == {"params_reduction": 1.25, "macs_reduction": 1.0, "size_reduction": 1.3333,
                       "speedup_eager_bs1": 2.0, "accuracy_change_points": -0.5}


def test_written_outputs(tmp_path):
    paths = write_report(_report(), tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["accuracy_vs_latency.png", "accuracy_vs_macs.png", "accuracy_vs_size.png",
                     "report.html", "report.json", "report.md"]
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["schema_version"] == 2
    assert data["steps"][0]["sqnr_db"] is None  # inf is not JSON; written as null
    assert data["final"]["params"] == 800
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_markdown_has_one_row_per_state():
    md = render_markdown(_report())
    assert "| original | 1 k | 2 k | 4 KiB | 2.000 | 90.00% |" in md
    assert "| after fold.bn | 800 | 2 k | 3 KiB | 1.000 | 89.50% |" in md
    assert "- warning: w1" in md.split("### Step 1: `fold.bn`")[1]
    assert "steps with warnings (listed under each step above): 1 (`fold.bn`, 1)" in md


def test_step_markdown_details_and_compressed_file_size_are_rendered():
    report = _report()
    report.steps[0].details["markdown"] = "| layer | rate |\n|---|---|\n| fc | 40x |"
    report.steps[0].after.file_bytes = 512
    md = render_markdown(report)
    assert "### Step 1: `fold.bn`" in md and "| fc | 40x |" in md
    assert "| after fold.bn | 800 | 2 k | 3 KiB | 512 B | 1.000 | 89.50% |" in md
    assert report.summary()["file_size_reduction"] == 8.0  # 4096 dense bytes / 512 file bytes
