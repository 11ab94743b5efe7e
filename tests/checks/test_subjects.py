"""The subjects of a subject test are checked like the issue's own: `check --test-subjects`
(length, placeholders, leftovers, the same words twice, each subject's SpamAssassin score) and
the preview, which shows each in its inbox view with its findings among the checks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.checks.spam import SpamCheck
from newsletter.cli import main
from tests.conftest import SAMPLE_SLUG, need

SPAMMY = "FREE!!! 100% GUARANTEED CASH $$$ ACT NOW"
TYPO = "Hello %%nmae%%, this week in policy"


def _check(root: Path, *subjects: str, spam: bool = False) -> tuple[int, list[dict]]:
    args = ["-C", str(root), "check", SAMPLE_SLUG, "--format", "json"]
    args += [] if spam else ["--no-spam"]
    for subject in subjects:
        args += ["--test-subjects", subject]
    result = CliRunner().invoke(main, args)
    findings = json.loads(result.stdout)["findings"]
    return result.exit_code, [f for f in findings if f["part"] == "subject"]


def test_each_subject_is_checked_and_a_bad_one_fails_the_check(publication: Path) -> None:
    code, found = _check(publication, "Grid queues and ransomware: four experts", TYPO)
    assert code == 0
    assert [(f["severity"], f["check"]) for f in found] == [("warning", "content.placeholder")]
    assert found[0]["message"].startswith("test subject B ('Hello %%nmae%%")
    code, found = _check(publication, "TK a subject", "Short", "tk A subject")
    assert code == 1
    assert {(f["severity"], f["check"], f["message"].split(":")[0]) for f in found} == {
        ("error", "content.leftover", "test subject A ('TK a subject')"),
        ("warning", "content.subject-length", "test subject B ('Short')"),
        ("error", "content.subject-test", "test subject C ('tk A subject') is the same as "
                                          "test subject A"),  # any case, any spaces
    }
    code, found = _check(publication, "Only one subject for this week")
    assert code == 1 and found[-1]["message"] == "a subject test needs at least two subjects"


@pytest.mark.slow  # SpamAssassin scores several new messages
def test_each_subject_gets_its_own_spam_score(publication: Path) -> None:
    need("SpamAssassin", SpamCheck.available())
    code, found = _check(publication, "Grid queues and ransomware: four experts", SPAMMY,
                         spam=True)
    scores = [f for f in found if f["check"] == "spam.score"]
    assert [f["message"].split(":")[0] for f in scores] == ["test subject B"]
    assert "GUARANTEED" in scores[0]["message"] and scores[0]["excerpt"] == SPAMMY


def test_the_preview_shows_and_checks_each_subject(publication: Path) -> None:
    from newsletter.web.preview import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    app = create_app(publication, publication / "issues" / SAMPLE_SLUG, watch=False,
                     subjects=("Grid queues and ransomware: four experts", TYPO))
    app.state.live.spam_checks = False
    with TestClient(app, base_url="http://127.0.0.1") as client:
        parts = client.get("/api/parts").json()
    assert parts["inbox"].count('class="inbox-row test-subject"') == 2
    assert "test subject B" in parts["inbox"] and "%%nmae%%" in parts["inbox"]
    assert "unknown personalisation placeholder %%nmae%%" in parts["checks"]
