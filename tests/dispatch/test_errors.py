"""No tracebacks for users: an unexpected error is one line and exit code 1, its traceback in
.newsletter/last-error.log and on the terminal only with --debug or NEWSLETTER_DEBUG=1.
Control characters in a subject, preheader or sender name are validation errors with file and
line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dispatch.conftest import ROOT, SLUG


def _run(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_DEBUG"}
    environ.update({"PYTHONPATH": str(ROOT), "NEWSLETTER_SECRET": "x" * 40, **env})
    return subprocess.run([sys.executable, "-m", "newsletter", "-C", str(root), *args],
                          env=environ, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def broken(publication: Path) -> Path:
    """A publication whose database lost a table behind the tool's back (an unplanned
    failure no command expects)."""
    from sqlalchemy import text

    from newsletter.db import open_database

    engine = open_database(f"sqlite:///{publication / '.newsletter' / 'newsletter.db'}")
    with engine.begin() as conn:
        conn.execute(text("PRAGMA foreign_keys=OFF"))
        conn.execute(text("DROP TABLE sends"))
    engine.dispose()
    return publication


def test_an_unexpected_error_is_one_line_and_logged(broken: Path) -> None:
    result = _run(broken, "status", SLUG)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: unexpected error: OperationalError:")
    assert "no such table: sends" in lines[0]
    assert "run with --debug to see the traceback" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    log = (broken / ".newsletter" / "last-error.log").read_text()
    assert "Traceback (most recent call last)" in log and "OperationalError" in log


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(broken: Path, how: str) -> None:
    if how == "flag":
        result = _run(broken, "--debug", "status", SLUG)
    else:
        result = _run(broken, "status", SLUG, NEWSLETTER_DEBUG="1")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: unexpected error:")


@pytest.mark.parametrize("file,old,new,message", [
    (f"issues/{SLUG}/issue.yaml", 'subject: "', r'subject: "Line\nbreak ',
     "'subject': must be one line of plain text, but it holds a line break"),
    (f"issues/{SLUG}/issue.yaml", 'preheader: "', r'preheader: "Bell\a ',
     "'preheader': must be one line of plain text, but it holds the control character "
     "U+0007"),
    ("newsletter.yaml", "from: {name: Example Institute,", r'from: {name: "Example\tInst",',
     "'from.name': must be one line of plain text, but it holds a tab"),
])
def test_control_characters_in_headers_are_validation_errors(
        publication: Path, file: str, old: str, new: str, message: str) -> None:
    path = publication / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if new[:8] in row)
    result = _run(publication, "check", SLUG)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"{file}:{line}: error: " in output and message in output, output
    assert "Traceback" not in output
