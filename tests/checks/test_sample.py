"""The sample issue passes every check with no warning: the template passes its own gate."""

from __future__ import annotations

import shutil
from pathlib import Path

from newsletter.checks import ERROR, WARNING
from tests.checks.conftest import check, of
from tests.conftest import need


def test_sample_has_no_errors_and_no_warnings(publication: Path) -> None:
    """The template passes its own gate: `check --strict` on the sample is clean."""
    need("SpamAssassin", shutil.which("spamassassin") is not None)
    report = check(publication, spam=True)
    assert report.errors == []
    assert report.warnings == []
    assert report.facts["spam"]["score"] < 3.0
    assert report.facts["sizes"]["html"] > 10_000


def test_sample_passes_each_family(sample_report) -> None:
    for family in ("content", "size", "links", "compliance", "accessibility"):
        assert [f for f in sample_report.findings if f.check.startswith(family + ".")] == []
    assert all(f.severity in (ERROR, WARNING) for f in sample_report.findings)
    assert of(sample_report, "clients.style-block") == []
    assert of(sample_report, "clients.unsupported") == []


def test_the_arabic_edition_passes_strict_too(publication: Path) -> None:
    """The edition with translated chrome and an English piece: no error, no warning."""
    from newsletter.checks import run
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication

    pub = Publication.load(publication)
    report = run(pub, build_issue(pub, "2026-11-24-ar"), spam=False)
    assert report.errors == [] and report.warnings == []
