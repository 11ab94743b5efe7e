"""Helpers for the check tests: edit a private copy of the sample publication, build, check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from newsletter.checks import Finding, Report, run
from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.compose.render import PACKAGED_TEMPLATES
from tests.conftest import SAMPLE_SLUG

ISSUE = Path("issues") / SAMPLE_SLUG


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there) with `new` in a file."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def write_piece(
    root: Path, name: str, body: str, title: str = "A piece", expert: str = "elena-marsh"
) -> Path:
    """Replace piece `name` (e.g. energy.md) with this front matter and body."""
    path = root / ISSUE / "pieces" / name
    path.write_text(f"---\ntitle: {title}\nexpert: {expert}\n---\n\n{body}\n", encoding="utf-8")
    return path


def own_template(root: Path) -> Path:
    """Copy the packaged default template into the publication, to break it on purpose."""
    target = root / "templates" / "default"
    if not target.exists():
        shutil.copytree(PACKAGED_TEMPLATES / "default", target)
    return target


def check(root: Path, *, spam: bool = False, **options) -> Report:
    pub = Publication.load(root)
    return run(pub, build_issue(pub, SAMPLE_SLUG), spam=spam, **options)


def of(report: Report | list[Finding], check_id: str) -> list[Finding]:
    findings = report.findings if isinstance(report, Report) else report
    return [f for f in findings if f.check == check_id]


@pytest.fixture()
def sample_report(publication: Path) -> Report:
    """The untouched sample issue, checked offline without SpamAssassin."""
    return check(publication)
