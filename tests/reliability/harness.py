"""The bad-input harness: run one case, assert what every user mistake must look like.

A CLI case (``torchslim.cli.main.main`` in process) must exit with code 2 and print exactly
one line, ``torchslim: error: ...``, containing the expected text, with no traceback; a
Python case must raise :class:`torchslim.errors.UserError` whose message is one line with
the expected text. Either way nothing the user already had may change: the ``--out`` folder
(pre-filled with the files of an earlier run) and any saved model keep their exact bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from torchslim.cli.main import main
from torchslim.errors import UserError


@dataclass(frozen=True)
class Cli:
    """``torchslim ARGS`` in ``tmp_path``: ``files`` are written first (``{name: text}``);
    ``{tmp}`` in ``args`` is the case's folder. ``run`` cases get ``--out {tmp}/out``,
    pre-filled with an earlier run's files."""

    id: str
    args: tuple[str, ...]
    expect: str
    files: dict[str, str | bytes | Callable[[Path], Any]] = field(default_factory=dict)
    names: str | None = None  # a file the message must name besides ``expect`` (the recipe's)


@dataclass(frozen=True)
class Api:
    """``setup(tmp_path)`` (e.g. save a model under ``tmp_path / "saved"``), then
    ``call(tmp_path)`` must raise a UserError containing ``expect``."""

    id: str
    call: Callable[[Path], Any]
    expect: str
    setup: Callable[[Path], Any] | None = None


def recipe(id: str, text: str, expect: str, command: str = "validate", names: str | None = "r.yaml") -> Cli:
    """A recipe case: ``text`` is written to ``r.yaml``; the message must also name ``names``
    (the recipe file; None where the bad thing is another file, named in ``expect``)."""
    return Cli(id, (command, "{tmp}/r.yaml"), expect, {"r.yaml": text}, names)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (folders as '<dir>')."""
    if not root.exists():
        return {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
            for p in sorted(root.rglob("*"))}


def _earlier_run(out: Path) -> None:
    (out / "model").mkdir(parents=True)
    (out / "report.json").write_text('{"earlier": true}')
    (out / "model" / "spec.json").write_text('{"earlier": true}')


def check_cli(case: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in case.files.items():  # bytes as they are; text with {tmp} filled in
        if callable(text):  # "__setup__": a function that writes files of its own
            text(tmp_path)
            continue
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text.replace("{tmp}", str(tmp_path)))
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    out = tmp_path / "out"
    if args[0] == "run" and "--out" not in args:
        _earlier_run(out)
        args += ["--out", str(out), "--no-progress"]
    before = tree_digest(out), tree_digest(tmp_path / "saved")
    capsys.readouterr()
    code = main(args)
    stdout, stderr = capsys.readouterr()
    assert code == 2, f"exit code {code}, stdout {stdout!r}, stderr {stderr!r}"
    assert "Traceback" not in stderr and stderr.startswith("torchslim: error: ") and stderr.count("\n") == 1, stderr
    assert case.expect in stderr, stderr
    if case.names:
        assert case.names in stderr, stderr
    assert (tree_digest(out), tree_digest(tmp_path / "saved")) == before


def check_api(case: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "saved"
    if case.setup is not None:
        case.setup(tmp_path)
    before = tree_digest(saved)
    capsys.readouterr()
    with pytest.raises(UserError) as info:
        case.call(tmp_path)
    message = str(info.value)
    assert "\n" not in message and case.expect in message, message
    assert "Traceback" not in capsys.readouterr().err
    assert tree_digest(saved) == before
