import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from torchslim.core.outdir import LOCK_FILE, OutDir
from torchslim.errors import UserError


def _write_lock(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host or socket.gethostname(), "started_utc": "2026-01-01T00:00:00+00:00"}
    (folder / LOCK_FILE).write_text(json.dumps(holder))
    return holder


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_holds_pid_host_start_and_is_released(tmp_path):
    out = tmp_path / "a" / "b"
    with OutDir(out) as path:
        assert path == out and out.is_dir()
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert holder["started_utc"].endswith("+00:00")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # no temp file left behind
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_lock_is_released_on_error_and_interrupt(tmp_path, error):
    with pytest.raises(error):
        with OutDir(tmp_path):
            raise error()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_live_holder_is_refused_in_one_line_naming_it(tmp_path):
    live = os.getppid()  # running, and not this process
    _write_lock(tmp_path, live)
    before = (tmp_path / LOCK_FILE).read_bytes()
    with pytest.raises(UserError) as info:
        OutDir(tmp_path).__enter__()
    message = str(info.value)
    assert "\n" not in message and f"pid {live} on host {socket.gethostname()}" in message
    assert str(tmp_path) in message and "another run is writing here" in message
    assert (tmp_path / LOCK_FILE).read_bytes() == before  # the holder's lock is untouched


def test_a_second_holder_in_the_same_process_is_refused(tmp_path):
    with OutDir(tmp_path):
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            OutDir(tmp_path).__enter__()
        assert (tmp_path / LOCK_FILE).exists()  # the refused one did not remove the first's lock


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    dead = _dead_pid()
    _write_lock(tmp_path, dead)
    with pytest.warns(UserWarning, match=f"no longer running \\(pid {dead} "):
        with OutDir(tmp_path):
            assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_refused_with_the_file_to_delete(tmp_path):
    _write_lock(tmp_path, _dead_pid(), host="elsewhere")
    with pytest.raises(UserError, match=f"on host elsewhere.*delete {tmp_path / LOCK_FILE}"):
        OutDir(tmp_path).__enter__()


def test_unwritable_or_impossible_out_is_one_line_naming_it(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match=f"^{a_file}: output path exists and is not a directory$"):
        OutDir(a_file).__enter__()
    with pytest.raises(UserError, match=f"^{a_file / 'sub'}: cannot create the output directory"):
        OutDir(a_file / "sub").__enter__()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(UserError, match="output directory is not writable"):
            OutDir(tmp_path).__enter__()
    finally:
        tmp_path.chmod(0o700)


def test_without_hard_links_the_lock_is_created_exclusively(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with OutDir(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(UserError, match="another run is writing here"):
            OutDir(tmp_path).__enter__()
    assert list(tmp_path.iterdir()) == []


RACER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("outdir", sys.argv[1])  # without torch: starts fast
outdir = importlib.util.module_from_spec(spec)
spec.loader.exec_module(outdir)
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
try:
    with outdir.OutDir(sys.argv[2]):
        print("held", flush=True)
        time.sleep(1.5)
except outdir.UserError as exc:
    print(exc)
"""


def test_of_runs_started_together_exactly_one_takes_the_folder(tmp_path):
    import time

    import torchslim.core.outdir as module

    start = str(time.time() + 1.5)
    env = {**os.environ, "PYTHONPATH": str(Path(module.__file__).parents[2])}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, module.__file__, str(tmp_path / "out"), start],
                               stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    lines = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert lines[-1] == "held" and all("another run is writing here" in line for line in lines[:-1]), lines
    assert list((tmp_path / "out").iterdir()) == []
