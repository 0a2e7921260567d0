"""The unreliable-figure flag: spread, warm-up, contention for the CPUs (injected values, hand-computed)."""

from __future__ import annotations

import pytest

from torchslim.core.reliability import (Contention, CpuSample, _busy_seconds, _cpu_wait_seconds, assess,
                                        contention)

QUIET = Contention(cpu_wait_fraction=0.01, other_cores=0.1, load_average=0.5)


def test_a_tight_settled_figure_on_a_quiet_machine_is_reliable():
    verdict = assess(2.0, 2.4, True, QUIET, threads=2, cores=2)
    assert verdict.reliable and verdict.reason is None


def test_each_reason_is_named_and_they_add_up():
    verdict = assess(2.0, 3.2, False, Contention(cpu_wait_fraction=0.35), threads=2, cores=2)
    assert not verdict.reliable
    assert verdict.reason == ("p90/p50 = 1.60 above 1.5; warm-up did not settle within its bound; "
                              "tasks waited for a CPU 35% of the time (CPU pressure)")


def test_cpu_pressure_is_the_signal_when_the_system_has_it():
    # pressure says quiet: a busy /proc/stat or load average does not override it
    assert assess(1.0, 1.0, True, Contention(0.1, 5.0, 9.0), threads=1, cores=2).reliable
    assert not assess(1.0, 1.0, True, Contention(0.11, 0.0, 0.0), threads=1, cores=2).reliable


@pytest.mark.parametrize("busy, threads, cores, reliable", [
    (1.4, 1, 2, True),    # one core left free by the measurement, 0.5 slack: up to 1.5 is fine
    (1.6, 1, 2, False),
    (0.5, 2, 2, True),    # both cores timed: only the slack
    (0.6, 2, 2, False),
    (0.6, 2, 8, True),
])
def test_without_pressure_other_processes_may_use_the_free_cores_plus_slack(busy, threads, cores, reliable):
    verdict = assess(1.0, 1.0, True, Contention(None, busy, 99.0), threads, cores)
    assert verdict.reliable is reliable
    if not reliable:
        assert verdict.reason == f"other processes kept {busy:.1f} of {cores} cores busy while timing {threads} thread(s)"


def test_the_load_average_is_the_last_resort_and_flags_only_above_the_core_count():
    assert assess(1.0, 1.0, None, Contention(load_average=2.0), 1, 2).reliable
    assert assess(1.0, 1.0, None, Contention(load_average=2.5), 1, 2).reason == "load average 2.5 above the 2 cores"
    assert assess(1.0, 1.0, None, Contention(), 1, 2).reliable  # nothing known


def test_contention_from_two_samples():
    # 2 s of wall time; all CPUs busy 3.0 s, of which 1.8 s were this process: 1.2 / 2 = 0.6 cores;
    # some task waited 0.3 s of the 2 s: 15%
    start, end = CpuSample(10.0, 100.0, 5.0, 40.0), CpuSample(12.0, 103.0, 6.8, 40.3)
    busy = contention(start, end, load_average=lambda: 1.5)
    assert busy.cpu_wait_fraction == pytest.approx(0.15) and busy.other_cores == pytest.approx(0.6)
    assert busy.load_average == 1.5


def test_a_short_sample_gives_no_core_count_and_missing_counters_give_none():
    short = contention(CpuSample(0.0, 1.0, 0.0, 1.0), CpuSample(0.1, 1.1, 0.0, 1.01), load_average=lambda: 3.25)
    assert short == Contention(cpu_wait_fraction=pytest.approx(0.1), other_cores=None, load_average=3.25)

    def no_load() -> float:
        raise OSError("no load average")

    assert contention(CpuSample(0.0, None, 0.0), CpuSample(9.0, None, 0.0), no_load) == Contention()


def test_counters_are_read_from_proc_files(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal: busy = 100 + 20 + 50 + 5 + 3 + 22 = 200 ticks
    stat.write_text("cpu  100 20 50 9999 77 5 3 22 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert _busy_seconds(str(stat)) == 2.0
    pressure = tmp_path / "pressure"
    pressure.write_text("some avg10=1.00 avg60=0.50 avg300=0.10 total=2500000\n"
                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert _cpu_wait_seconds(str(pressure)) == 2.5
    assert _busy_seconds(str(tmp_path / "missing")) is None and _cpu_wait_seconds(str(tmp_path / "missing")) is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert _busy_seconds(str(tmp_path / "odd")) is None and _cpu_wait_seconds(str(tmp_path / "odd")) is None
