"""Accessibility: lang, contrast, heading order, vague link text, layout tables."""

from __future__ import annotations

from pathlib import Path

from newsletter.checks import ERROR, WARNING
from newsletter.checks.colour import contrast, parse
from tests.checks.conftest import check, edit, of, own_template, write_piece


def test_contrast_ratio_matches_wcag_examples() -> None:
    black, white = parse("#000")[0], parse("white")[0]
    assert round(contrast(black, white), 1) == 21.0
    assert round(contrast(parse("#777777")[0], white), 2) == 4.48  # the classic AA near-miss
    assert parse("rgba(0, 0, 0, 0.5)") == ((0.0, 0.0, 0.0), 0.5)


def test_missing_lang_is_an_error(publication: Path) -> None:
    template = own_template(publication)
    root = '<mjml lang="{{ issue.lang }}" dir="{{ issue.dir }}">'
    edit(template / "email.mjml.j2", root, "<mjml>")
    report = check(publication)
    # MJML falls back to lang="und" (undetermined) without a lang attribute.
    [finding] = of(report, "accessibility.lang")
    assert finding.severity == ERROR and "und" in finding.message


def test_empty_language_setting_is_an_error(publication: Path) -> None:
    edit(publication / "newsletter.yaml", "language: en", 'language: ""')
    [finding] = of(check(publication), "accessibility.lang")
    assert finding.severity == ERROR and finding.file.endswith("newsletter.yaml")


def test_low_contrast_text_is_an_error_pointing_at_the_template(publication: Path) -> None:
    template = own_template(publication)
    edit(
        template / "email.mjml.j2",
        "color: #4a5563; margin: 0 0 16px 0;",
        "color: #aaaaaa; margin: 0 0 16px 0;",
    )
    [finding] = of(check(publication), "accessibility.contrast")
    assert finding.severity == ERROR
    assert "#aaaaaa on #ffffff" in finding.message and "2.32:1" in finding.message
    assert finding.file.endswith("email.mjml.j2")
    lines = (template / "email.mjml.j2").read_text().splitlines()
    assert "#aaaaaa" in lines[finding.line - 1]


def test_hidden_text_is_not_checked_for_contrast(sample_report) -> None:
    # The sample's hidden preheader is white on white; it must not count.
    assert of(sample_report, "accessibility.contrast") == []


def test_skipped_heading_level_warns(publication: Path) -> None:
    path = write_piece(publication, "cyber.md", "Intro.\n\n#### A deep heading\n\nMore text.")
    [finding] = of(check(publication), "accessibility.headings")
    assert finding.severity == WARNING and "h4 follows h2" in finding.message
    assert (finding.file, finding.line) == (str(path.resolve()), 8)


def test_vague_link_text_warns(publication: Path) -> None:
    write_piece(
        publication,
        "cyber.md",
        "Read the report [here](https://example.org/a). Or [click here](https://example.org/b).\n\n"
        "The [full report on grids](https://example.org/c) is fine.",
    )
    findings = of(check(publication), "accessibility.link-text")
    assert sorted(f.message.split('"')[1] for f in findings) == ["click here", "here"]
    assert all(f.severity == WARNING and f.line == 6 for f in findings)


def test_layout_table_without_role_is_an_error(publication: Path) -> None:
    template = own_template(publication)
    edit(
        template / "email.mjml.j2",
        '<mj-column>\n        <mj-text padding="0 24px">',
        "<mj-column>\n        <mj-raw><table><tr><td>Masthead</td></tr></table></mj-raw>"
        '\n        <mj-text padding="0 24px">',
    )
    [finding] = of(check(publication), "accessibility.layout-table")
    assert finding.severity == ERROR and "1 layout table" in finding.message


def test_sample_layout_tables_are_all_presentation(sample_report) -> None:
    assert of(sample_report, "accessibility.layout-table") == []


def test_low_contrast_in_dark_mode_is_an_error_at_the_dark_palette_line(
    publication: Path,
) -> None:
    assert of(check(publication), "accessibility.contrast") == []
    template = own_template(publication) / "email.mjml.j2"
    edit(template, '("h2.headline", "color", "#f0f4f8")', '("h2.headline", "color", "#3a4450")')
    findings = of(check(publication), "accessibility.contrast")
    dark = [f for f in findings if "in dark mode" in f.message]
    outlook = [f for f in findings if "Outlook.com's dark mode" in f.message]
    assert len(dark) == 1 and len(outlook) == 1 and len(findings) == 2
    assert "#3a4450 on #161e27" in dark[0].message and "used 4 times" in dark[0].message
    assert dark[0].file == str(template)
    assert "h2.headline" in template.read_text().splitlines()[dark[0].line - 1]


def test_dark_rules_follow_the_cascade(publication: Path) -> None:
    """A more specific dark rule wins over a less specific later one, as in a browser."""
    template = own_template(publication) / "email.mjml.j2"
    edit(
        template,
        '("p.byline, p.follow, p.caption", "color", "#b8c2cc")',
        '(".byline", "color", "#3a4450"), ("p.follow, p.caption", "color", "#b8c2cc")',
    )
    # `.nl-text p` (more specific) gives bylines a light colour, so nothing is reported
    assert of(check(publication), "accessibility.contrast") == []
