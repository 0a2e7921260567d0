"""The report's latency fields: where each figure came from and whether it is reliable."""

from __future__ import annotations

import json

from torchslim.report.schema import LatencyPoint, RunReport, Snapshot, StepReport


def _snap(label: str, *points: LatencyPoint) -> Snapshot:
    return Snapshot(label, params=10, macs=100, flops=200, size_bytes=40, peak_activation_bytes=8, latency=list(points))


def _report(after_reliable: bool) -> RunReport:
    before = _snap("original", LatencyPoint("eager", 1, 2, 2.0, 2.2), LatencyPoint("onnxruntime", 1, 2, 1.0, 1.1))
    after = _snap("step 1", LatencyPoint("eager", 1, 2, 1.0, 1.1),
                  LatencyPoint("onnxruntime", 1, 2, 0.25, 0.9, after_reliable,
                               None if after_reliable else "p90/p50 = 3.60 above 1.5", "cpu", "CPUExecutionProvider", 9))
    step = StepReport(1, "fold.bn", {}, before, after, 0.0, None, 0.1)
    return RunReport(model={}, machine={}, initial=before, steps=[step])


def test_a_speedup_from_an_unreliable_figure_is_named_in_the_summary():
    summary = _report(after_reliable=False).summary()
    assert summary["speedup_eager_bs1"] == 2.0 and summary["speedup_onnxruntime_bs1"] == 4.0
    assert summary["unreliable_speedups"] == ["speedup_onnxruntime_bs1"]
    assert "unreliable_speedups" not in _report(after_reliable=True).summary()


def test_format_ms_never_prints_an_unreliable_figure_plain():
    point = _report(after_reliable=False).final.latency_point("onnxruntime", 1)
    assert point.format_ms() == "0.250 (unreliable)"
    assert LatencyPoint("eager", 1, 1, 0.12345, 0.2).format_ms(2) == "0.12"


def test_json_round_trip_keeps_the_provenance_and_reads_older_points():
    data = json.loads(json.dumps(_report(after_reliable=False).to_dict()))
    point = data["final"]["latency"][1]
    assert point == {"runtime": "onnxruntime", "batch_size": 1, "threads": 2, "latency_ms_p50": 0.25,
                     "latency_ms_p90": 0.9, "reliable": False, "unreliable_reason": "p90/p50 = 3.60 above 1.5",
                     "device": "cpu", "provider": "CPUExecutionProvider", "warmup_runs": 9}
    assert Snapshot.from_dict(data["final"]).latency[1] == _report(after_reliable=False).final.latency[1]
    old = Snapshot.from_dict({**data["initial"], "latency": [{"runtime": "eager", "batch_size": 1, "threads": 2,
                                                               "latency_ms_p50": 2.0, "latency_ms_p90": 2.2}]})
    assert old.latency[0].reliable and old.latency[0].device == "cpu" and old.latency[0].warmup_runs is None
