"""compress(out_dir=...): the same report files as `torchslim run`, the folder locked, checked first."""

import json
import os
import socket

import pytest

from torchslim import compress
from torchslim.core.outdir import LOCK_FILE
from torchslim.errors import UserError
from torchslim.profiler.snapshot import MeasureConfig
from torchslim.report.writer import write_report
from tests.conftest import small_model

NO_LATENCY = MeasureConfig(runtimes=())


def test_compress_writes_the_reports_torchslim_run_writes(tmp_path):
    model, x = small_model("lenet5", batch_norm=True)
    result = compress(model, ["fold.bn"], example_inputs=x[:1], measure=NO_LATENCY, progress=False,
                      out_dir=tmp_path / "out")
    reference = tmp_path / "reference"
    expected = sorted(p.name for p in write_report(result.report, reference))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == expected  # and no lock left behind
    assert {"report.json", "report.md", "accuracy_vs_size.png"} <= set(expected)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["steps"][0]["technique"] == "fold.bn"
    assert written["steps"][0]["after"]["params"] == result.report.steps[0].after.params
    assert (tmp_path / "out" / "report.md").read_text() == (reference / "report.md").read_text()


def test_compress_into_a_locked_folder_refuses_before_any_work(tmp_path):
    model, x = small_model("lenet5")
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                  "started_utc": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(UserError, match=f"another run is writing here \\(pid {os.getppid()} "):
        compress(model, ["fold.bn"], example_inputs=x[:1], measure=NO_LATENCY, progress=False, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]


def test_compress_with_a_bad_step_does_not_create_the_out_dir(tmp_path):
    model, x = small_model("lenet5")
    with pytest.raises(UserError, match="unknown field 'bogus'"):
        compress(model, [("fold.bn", {"bogus": 1})], example_inputs=x[:1], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
