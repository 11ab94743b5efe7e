"""Size: the HTML part warns from 90 KB and fails from 102 KB; the whole message too."""

from __future__ import annotations

from pathlib import Path

from newsletter.checks import ERROR, WARNING
from newsletter.checks.size import HTML_ERROR, HTML_WARN, MESSAGE_WARN
from tests.checks.conftest import check, of, write_piece

SENTENCE = "Interconnection queues grow while transmission planning lags behind demand. "


def padded_issue(root: Path, extra_bytes: int) -> None:
    """Grow the cyber piece by about `extra_bytes` of paragraphs."""
    paragraph = SENTENCE * 10
    count = extra_bytes // len(paragraph) + 1
    write_piece(root, "cyber.md", "\n\n".join([paragraph] * count))


def test_sample_is_well_under_the_limits(sample_report) -> None:
    assert sample_report.facts["sizes"]["html"] < HTML_WARN
    assert of(sample_report, "size.html") == []


def test_html_part_near_the_gmail_limit_warns(publication: Path) -> None:
    base = check(publication).facts["sizes"]["html"]
    padded_issue(publication, HTML_WARN - base + 4096)  # the cyber piece it replaces is ~2 KB
    report = check(publication)
    [finding] = of(report, "size.html")
    assert HTML_WARN <= report.facts["sizes"]["html"] < HTML_ERROR
    assert finding.severity == WARNING and "Gmail" in finding.message


def test_html_part_over_the_gmail_limit_is_an_error(publication: Path) -> None:
    base = check(publication).facts["sizes"]["html"]
    padded_issue(publication, HTML_ERROR - base + 2048)
    [finding] = of(check(publication), "size.html")
    assert finding.severity == ERROR


def test_huge_message_warns_about_total_size(publication: Path) -> None:
    padded_issue(publication, MESSAGE_WARN)
    report = check(publication)
    assert report.facts["sizes"]["message"] >= MESSAGE_WARN
    [finding] = of(report, "size.message")
    assert finding.severity == WARNING


def test_click_tracking_is_measured_after_rewriting_the_links(publication: Path) -> None:
    plain = check(publication).facts["sizes"]
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text() + "tracking: {clicks: true}\n")
    tracked = check(publication).facts["sizes"]
    # every tracked link became a longer redirect URL; that larger size is the one judged
    assert tracked["html_tracked"] > plain["html"] + 15 * 40
    assert tracked["html"] == tracked["html_tracked"]
    # a link-heavy issue that fits untracked is clipped once its links are rewritten
    links = " ".join(f"[l{n}](https://example.org/{n})" for n in range(500))
    write_piece(publication, "cyber.md", links)
    report = check(publication)
    [finding] = of(report, "size.html")
    assert "click tracking" in finding.message and finding.severity == ERROR
    config.write_text(config.read_text().replace("tracking: {clicks: true}\n", ""))
    assert check(publication).facts["sizes"]["html"] < HTML_ERROR
