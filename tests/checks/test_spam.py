"""Spam: SpamAssassin's score (local rules only); a warning when it is not installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from newsletter.checks import ERROR, WARNING
from newsletter.checks.spam import SpamCheck, Verdict
from tests.checks.conftest import ISSUE, check, edit, of, write_piece
from tests.conftest import need

SPAMMY = """CONGRATULATIONS!!! You have been SELECTED to receive a FREE CASH PRIZE of $1,000,000!!!
This is 100% FREE and RISK FREE. Claim your prize NOW before this limited time offer expires!!!

Buy cheap Viagra and Cialis online, no prescription needed. Lose weight fast with our miracle
diet pills. Make money fast working from home, earn $5000 per week guaranteed! Double your
income! Eliminate your debt! Lowest mortgage rates, refinance today. Dear friend, this is not
spam. To be removed from our mailing list reply REMOVE.

Act now! Call now! Order now! Winner! Urgent! 100% satisfaction guaranteed. Once in a lifetime
opportunity. No credit check. Cash bonus. Amazing offer!!!"""


@pytest.fixture()
def spamassassin() -> None:
    need("SpamAssassin", shutil.which("spamassassin") is not None)


def test_sample_scores_low_and_lists_the_rules(spamassassin, publication: Path) -> None:
    report = check(publication, spam=True)
    assert of(report, "spam.score") == [] and of(report, "spam.failed") == []
    spam = report.facts["spam"]
    assert spam["score"] < 3.0
    assert spam["rules"] and all(r["rule"].isupper() for r in spam["rules"])
    assert abs(sum(r["points"] for r in spam["rules"]) - spam["score"]) < 0.15


@pytest.mark.slow
def test_spammy_issue_is_an_error_naming_the_rules(spamassassin, publication: Path) -> None:
    edit(
        publication / ISSUE / "issue.yaml",
        'subject: "Grid queues, ransomware, Egypt\'s squeeze & the tariff trap"',
        'subject: "FREE MONEY!!! ACT NOW - YOU ARE A WINNER $$$"',
    )
    write_piece(publication, "energy.md", SPAMMY, title="FREE MONEY!!! ACT NOW!!!")
    report = check(publication, spam=True)
    [finding] = of(report, "spam.score")
    assert report.facts["spam"]["score"] >= 5.0
    assert finding.severity == ERROR
    top = max(report.facts["spam"]["rules"], key=lambda r: r["points"])
    assert top["rule"] in finding.message


def test_score_thresholds() -> None:
    def severities(score: float) -> list[str]:
        spam = SpamCheck(b"")
        spam.verdict = Verdict(score=score, rules=[("SOME_RULE", score, "text")])
        return [f.severity for f in spam.findings()]

    assert severities(2.9) == []
    assert severities(3.0) == [WARNING]
    assert severities(4.9) == [WARNING]
    assert severities(5.0) == [ERROR]


def test_without_spamassassin_a_warning_says_it_was_skipped(
    publication: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no spamassassin on this PATH
    report = check(publication, spam=True)
    [finding] = of(report, "spam.skipped")
    assert finding.severity == WARNING and "not installed" in finding.message
    assert "spam" not in report.facts
