"""The sample issue passes every check; the only warnings are justified here."""

from __future__ import annotations

import shutil
from pathlib import Path

from newsletter.checks import ERROR, WARNING
from tests.checks.conftest import check, of
from tests.conftest import need

# Justified warnings on the sample (both come from MJML's own output, not from the issue):
# - clients.unsupported "word-break": MJML puts `word-break: break-word` on every text cell so long
#   URLs wrap; Yahoo! Mail ignores it, which only matters for very long unbroken words.
# - clients.style-block: MJML's responsive rules live in <style> (media queries, class selectors);
#   Gmail's mobile webmail and Outlook for Windows ignore them and show the inlined desktop
#   layout (MJML gives Outlook fixed-width "ghost" tables for that).
JUSTIFIED = {("clients.unsupported", "word-break"), ("clients.style-block", "<style>")}


def test_sample_has_no_errors_and_only_justified_warnings(publication: Path) -> None:
    need("SpamAssassin", shutil.which("spamassassin") is not None)
    report = check(publication, spam=True)
    assert report.errors == []
    unexplained = [
        w
        for w in report.warnings
        if not any(w.check == c and text in w.message for c, text in JUSTIFIED)
    ]
    assert unexplained == []
    assert len(report.warnings) == len(JUSTIFIED)
    assert report.facts["spam"]["score"] < 3.0
    assert report.facts["sizes"]["html"] > 10_000


def test_sample_passes_each_family(sample_report) -> None:
    for family in ("content", "size", "links", "compliance", "accessibility"):
        assert [f for f in sample_report.findings if f.check.startswith(family + ".")] == []
    assert all(f.severity in (ERROR, WARNING) for f in sample_report.findings)
    assert of(sample_report, "clients.style-block")
