"""Each step's factors against the state before it, and the verdict in words."""

from torchslim.report.paid import paid_table, step_factors, verdict
from torchslim.report.schema import LatencyPoint, Snapshot, StepReport


def _snap(size, macs, ms, accuracy=0.9, params=None):
    lat = [LatencyPoint("onnxruntime", 1, 2, ms[0], ms[0]), LatencyPoint("onnxruntime", 16, 2, ms[1], ms[1])]
    return Snapshot("s", params or size // 4, macs, 2 * macs, size, 0, latency=lat, accuracy=accuracy)


def _step(before, after, technique="x"):
    return StepReport(1, technique, {}, before, after, 0.1, 30.0, 0.1)


def test_factors_are_before_over_after():
    step = _step(_snap(4000, 1000, (2.0, 8.0)), _snap(1000, 500, (1.0, 10.0)))
    assert step_factors(step) == {"size": 4.0, "macs": 2.0, "onnxruntime bs1": 2.0, "onnxruntime bs16": 0.8}
    assert verdict(step) == "pays (size, macs, onnxruntime bs1) but slower in onnxruntime bs16"


def test_structural_step_within_noise_pays_only_in_size():
    assert verdict(_step(_snap(4000, 1000, (1.0, 8.0)), _snap(1000, 1000, (1.05, 7.6)))) == "pays (size)"


def test_a_step_that_changes_no_structure_is_not_judged_on_timing_noise():
    before = _snap(4000, 1000, (1.0, 8.0), accuracy=0.3)
    assert verdict(_step(before, _snap(4000, 1000, (1.5, 6.0), accuracy=0.97))) == "recovers accuracy (+67.0 points)"
    assert verdict(_step(before, _snap(4000, 1000, (0.5, 16.0), accuracy=0.3))) == "no size or speed change by itself"


def test_table_has_one_row_per_step():
    step = _step(_snap(4000, 1000, (2.0, 8.0)), _snap(1000, 500, (1.0, 10.0)), "quant.ptq")
    lines = paid_table([step], step.before)
    assert lines[0] == "| # | technique | size x | macs x | onnxruntime bs1 x | onnxruntime bs16 x | top-1 change | verdict |"
    assert lines[2] == ("| 1 | `quant.ptq` | 4.00 | 2.00 | 2.00 | 0.80 | +0.0 | "
                        "pays (size, macs, onnxruntime bs1) but slower in onnxruntime bs16 |")
