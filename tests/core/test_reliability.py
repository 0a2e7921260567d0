"""The unreliable-figure flag: spread, warm-up, other processes' CPU use (injected values, hand-computed)."""

from __future__ import annotations

import pytest

from torchslim.core.reliability import CpuSample, _busy_seconds, assess, other_cores


def test_a_tight_settled_figure_on_a_quiet_machine_is_reliable():
    verdict = assess(2.0, 2.4, True, (0.1, "proc_stat"), threads=2, cores=2)
    assert verdict.reliable and verdict.reason is None


def test_each_reason_is_named_and_they_add_up():
    verdict = assess(2.0, 3.2, False, (1.0, "proc_stat"), threads=2, cores=2)
    assert not verdict.reliable
    assert verdict.reason == ("p90/p50 = 1.60 above 1.5; warm-up did not settle within its bound; "
                              "other processes kept 1.0 of 2 cores busy while timing 2 thread(s)")


@pytest.mark.parametrize("busy, threads, cores, reliable", [
    (1.4, 1, 2, True),    # one core left free by the measurement, 0.5 slack: up to 1.5 is fine
    (1.6, 1, 2, False),
    (0.5, 2, 2, True),    # both cores timed: only the slack
    (0.6, 2, 2, False),
    (0.6, 2, 8, True),
])
def test_contention_threshold_is_the_free_cores_plus_slack(busy, threads, cores, reliable):
    assert assess(1.0, 1.0, True, (busy, "proc_stat"), threads, cores).reliable is reliable


def test_load_average_fallback_flags_only_above_the_core_count():
    assert assess(1.0, 1.0, None, (2.0, "load_average"), 1, 2).reliable
    verdict = assess(1.0, 1.0, None, (2.5, "load_average"), 1, 2)
    assert verdict.reason == "load average 2.5 above the 2 cores"
    assert assess(1.0, 1.0, None, (None, "unknown"), 1, 2).reliable


def test_other_cores_subtracts_our_own_cpu_time():
    # 2 s of wall time; all CPUs busy 3.0 s, of which 1.8 s were this process: 1.2 s / 2 s = 0.6 cores
    start, end = CpuSample(10.0, 100.0, 5.0), CpuSample(12.0, 103.0, 6.8)
    busy, source = other_cores(start, end, load_average=lambda: 99.0)
    assert source == "proc_stat" and busy == pytest.approx(0.6)


def test_other_cores_falls_back_to_the_load_average_for_short_or_unknown_samples():
    short = other_cores(CpuSample(0.0, 1.0, 0.0), CpuSample(0.1, 1.1, 0.0), load_average=lambda: 3.25)
    unknown = other_cores(CpuSample(0.0, None, 0.0), CpuSample(9.0, None, 0.0), load_average=lambda: 0.5)
    assert short == (3.25, "load_average") and unknown == (0.5, "load_average")

    def no_load() -> float:
        raise OSError("no load average")

    assert other_cores(CpuSample(0.0, None, 0.0), CpuSample(9.0, None, 0.0), no_load) == (None, "unknown")


def test_busy_seconds_reads_proc_stat(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal: busy = 100 + 20 + 50 + 5 + 3 + 22 = 200 ticks
    stat.write_text("cpu  100 20 50 9999 77 5 3 22 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert _busy_seconds(str(stat)) == 2.0
    assert _busy_seconds(str(tmp_path / "missing")) is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert _busy_seconds(str(tmp_path / "odd")) is None
