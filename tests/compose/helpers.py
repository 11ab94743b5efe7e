"""Helpers for build tests: run the CLI in-process and edit sample files."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from newsletter.cli import main

SAMPLE = "2026-11-24"


def run(root: Path, *args: str) -> Result:
    """Invoke `newsletter -C root ARGS` in-process; stderr kept separate."""
    return CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)


def issue_dir(root: Path) -> Path:
    return root / "issues" / SAMPLE


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    """1-based line number of the first line containing `needle`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")
