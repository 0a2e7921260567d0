"""An output folder owned by one run at a time: checked writable and locked before any work.

``with OutDir(path) as out:`` creates ``path`` if needed and creates ``path/.torchslim.lock``
holding the owner's pid, host and start time. A second run into the same folder refuses with
one line naming the holder; a lock whose pid is no longer running on this host (the run was
killed) is taken over with a warning; a lock from another host is never guessed at (its pid
means nothing here): the message says to delete the file if that run is gone. The lock is
removed on exit, also on an error or KeyboardInterrupt.

Written here rather than with ``fcntl.flock`` or a lock package: the holder has to be named in
the refusal and a stale holder detected from a file anyone can read (``cat .torchslim.lock``),
and the file is created with its content in one atomic step (``os.link`` of a complete temp
file), so no reader ever sees a half-written lock (on a filesystem without hard links: an
exclusive create, then the write).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from torchslim.errors import UserError

LOCK_FILE = ".torchslim.lock"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read(lock: Path) -> dict | None:
    """The holder recorded in ``lock``; None if the file is gone; {} if it is unreadable."""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started_utc', '?')}")


class OutDir:
    """Context manager: ``path`` exists, is writable, and is locked for this run."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lock = self.path / LOCK_FILE
        self._held: dict | None = None

    def __enter__(self) -> Path:
        self.acquire()
        return self.path

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: output path exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the output directory ({exc.strerror})") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(3):  # a stale lock taken over, then the create retried
            if self._create(me):
                self._held = me
                return
            holder = _read(self.lock)
            if holder is None:  # released between our attempt and the read
                continue
            if holder.get("host") != me["host"] or not isinstance(holder.get("pid"), int):
                raise UserError(f"{self.path}: locked by another run ({_describe(holder)}); "
                                f"if that run is gone, delete {self.lock}")
            if _pid_running(holder["pid"]):
                raise UserError(f"{self.path}: another run is writing here ({_describe(holder)}); "
                                "wait for it to finish or choose another --out")
            self._take_over(holder)
        raise UserError(f"{self.path}: could not take the lock {self.lock} (other runs keep taking it)")

    def _create(self, me: dict) -> bool:
        """Create the lock file with ``me`` in it atomically; False if it already exists."""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"{LOCK_FILE}.", dir=self.path)
        except OSError as exc:
            raise UserError(f"{self.path}: output directory is not writable ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            os.link(tmp, self.lock)
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then write
            return self._create_exclusive(me)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _create_exclusive(self, me: dict) -> bool:
        try:
            fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise UserError(f"{self.path}: output directory is not writable ({exc.strerror})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return True

    def _take_over(self, stale: dict) -> None:
        """Move the stale lock aside; if another run replaced it in the meantime, put theirs back."""
        aside = self.lock.with_name(f"{LOCK_FILE}.stale.{os.getpid()}")
        try:
            os.replace(self.lock, aside)
        except FileNotFoundError:
            return
        if _read(aside) != stale:  # we moved a fresh lock of a run that took over first
            try:
                os.link(aside, self.lock)
            except OSError:  # a third run holds it by now, or no hard links: theirs stands
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        warnings.warn(f"{self.path}: taking over the lock of a run that is no longer running "
                      f"({_describe(stale)})", stacklevel=4)

    def release(self) -> None:
        if self._held is not None and _read(self.lock) == self._held:
            self.lock.unlink(missing_ok=True)
        self._held = None
