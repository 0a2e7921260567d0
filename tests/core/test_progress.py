"""Progress: plain lines without a terminal (no carriage returns), time left, silent when disabled."""

import io

import torch
from torch.utils.data import TensorDataset

from torchslim.core.progress import Progress, format_seconds, note
from torchslim.train import fit


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_left_is_mean_time_per_item_times_items_left():
    clock, out = _Clock(), io.StringIO()
    progress = Progress(4, "epoch", stream=out, clock=clock, bar=False)
    clock.now += 3.0
    progress.update()
    assert progress.remaining() == 9.0  # 3 s per item, 3 left
    progress.line("loss 0.5")
    clock.now += 5.0
    progress.update()
    progress.line("loss 0.25")
    assert out.getvalue() == "epoch 1/4, 3.0 s, ~9.0 s left: loss 0.5\nepoch 2/4, 8.0 s, ~8.0 s left: loss 0.25\n"


def test_resumed_items_are_counted_but_not_timed():
    clock = _Clock()
    progress = Progress(5, "compress", initial=3, stream=io.StringIO(), clock=clock)
    assert progress.remaining() is None
    clock.now += 2.0
    progress.update()
    assert progress.status() == "4/5, 2.0 s, ~2.0 s left"


def test_without_a_terminal_updates_are_thinned_lines_with_no_carriage_return():
    clock, out = _Clock(), io.StringIO()
    with Progress(100, "calibrate", stream=out, clock=clock, line_every=10.0) as progress:
        for _ in range(100):
            clock.now += 1.0
            progress.update(batch=7)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10  # one every 10 s over 100 s (the 100th is the closing line)
    assert lines[0] == "calibrate 10/100, 10 s, ~1 min 30 s left: batch 7"
    assert lines[-1] == "calibrate 100/100, 1 min 40 s: batch 7"


def test_disabled_prints_nothing():
    out = io.StringIO()
    with Progress(3, "x", enabled=False, stream=out) as progress:
        progress.update()
        progress.line("text")
    note("reusing", enabled=False, stream=out)
    assert out.getvalue() == ""


def test_format_seconds():
    assert [format_seconds(s) for s in (0.44, 12.4, 185, 3725)] == ["0.4 s", "12 s", "3 min 05 s", "1 h 02 min"]


def test_training_without_a_terminal_prints_one_line_per_epoch(capsys):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    model = torch.nn.Linear(4, 2)
    fit(model, data, epochs=3, batch_size=16, val_data=data, progress=True)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/3, ") and ": loss " in line and ", val acc " in line
    assert "left" in lines[0] and "left" not in lines[-1]
    fit(model, data, epochs=1, batch_size=16, progress=False)
    assert capsys.readouterr().err == ""


def test_unknown_total_counts_without_an_estimate():
    clock, out = _Clock(), io.StringIO()
    progress = Progress(None, "epoch 1/2", stream=out, clock=clock, line_every=0.0)
    clock.now += 2.0
    progress.update(3)
    assert progress.remaining() is None
    assert out.getvalue() == "epoch 1/2 3/?, 2.0 s\n"
