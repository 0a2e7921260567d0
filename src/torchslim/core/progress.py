"""Progress of long work (training, calibration, scans, many latency measurements) on stderr.

On a terminal a tqdm bar; without one (CI, ``nohup``, a log file) plain lines with no carriage
returns: one per :meth:`Progress.line` (training prints one per epoch) and, for loops that only
call :meth:`Progress.update`, at most one every ``line_every`` seconds plus one at the end.
Every line says how far the work is, the time so far and an estimate of the time left (mean
time per item so far x items left). ``enabled=False`` (``--quiet``, ``progress=False``) prints
nothing. Progress goes to stderr only, never into report files.

tqdm does the terminal bar; the plain-line mode is hand-written because tqdm without a terminal
still draws its bar with carriage returns (its ``mininterval`` only thins them out).
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO


def format_seconds(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def note(message: str, enabled: bool = True, stream: TextIO | None = None) -> None:
    """One line on stderr (e.g. "reusing trained model from ..."), unless disabled."""
    if enabled:
        print(message, file=stream or sys.stderr, flush=True)


class Progress:
    """``total`` items of work named ``desc`` (None: unknown); a context manager, or call :meth:`close`.

    ``update(n, **postfix)`` advances; ``line(text)`` prints one plain line with the count, time
    so far and time left (above the bar on a terminal). ``bar=False`` never draws a bar (for an
    outer loop whose inner loop has one). ``initial`` items were done before (a resumed run:
    counted, not timed). ``clock`` is injectable for tests.
    """

    def __init__(self, total: int | None, desc: str, *, enabled: bool = True, initial: int = 0, unit: str = "it",
                 bar: bool = True, line_every: float = 10.0, stream: TextIO | None = None,
                 clock: Any = time.perf_counter) -> None:
        self.total = None if total is None else max(int(total), 0)  # None: unknown length
        self.desc, self.enabled = desc, enabled
        self.stream = stream or sys.stderr
        self.line_every = line_every
        self._clock = clock
        self._start = self._last_line = clock()
        self.done = self._initial = max(int(initial), 0)
        self._postfix: dict[str, Any] = {}
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = None
        if enabled and bar and tty:
            from tqdm import tqdm  # lazy: only when a bar is drawn

            self._bar = tqdm(total=self.total, initial=self.done, desc=desc, unit=unit, file=self.stream,
                             leave=False, dynamic_ncols=True)
        self._plain_updates = enabled and bar and not tty

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(finished=kind is None)

    def elapsed(self) -> float:
        return self._clock() - self._start

    def remaining(self) -> float | None:
        """Estimated seconds left (mean time per finished item x items left), None before the first."""
        timed = self.done - self._initial
        if timed <= 0 or self.total is None:
            return None
        return self.elapsed() / timed * max(self.total - self.done, 0)

    def status(self) -> str:
        """``3/10, 4.2 s, ~9.8 s left`` (``3/?, 4.2 s`` when the total is unknown)."""
        text = f"{self.done}/{'?' if self.total is None else self.total}, {format_seconds(self.elapsed())}"
        left = self.remaining()
        if left is not None and self.total is not None and self.done < self.total:
            text += f", ~{format_seconds(left)} left"
        return text

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        self._postfix.update(postfix)
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({k: _short(v) for k, v in postfix.items()}, refresh=False)
            self._bar.update(n)
        elif (self._plain_updates and (self.total is None or self.done < self.total)
              and self._clock() - self._last_line >= self.line_every):
            self._emit(", ".join(f"{k} {_short(v)}" for k, v in self._postfix.items()))

    def line(self, text: str = "") -> None:
        """One plain line: ``desc status: text`` (written above the bar on a terminal)."""
        if self.enabled:
            self._emit(text)

    def _emit(self, text: str) -> None:
        self._last_line = self._clock()
        message = f"{self.desc} {self.status()}" + (f": {text}" if text else "")
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self, finished: bool = True) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._plain_updates and finished and self.done > self._initial:
            self._plain_updates = False
            self._emit(", ".join(f"{k} {_short(v)}" for k, v in self._postfix.items()))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
