"""Content: subject, preheader, pieces, leftover placeholders."""

from __future__ import annotations

from pathlib import Path

from newsletter.checks import ERROR, WARNING, check_issue
from newsletter.compose.publication import Publication
from tests.checks.conftest import ISSUE, check, edit, of, write_piece

SUBJECT = 'subject: "Grid queues, ransomware, Egypt\'s squeeze & the tariff trap"'


def test_short_subject_warns_at_its_line(publication: Path) -> None:
    edit(publication / ISSUE / "issue.yaml", SUBJECT, "subject: Weekly")
    [finding] = of(check(publication), "content.subject-length")
    assert finding.severity == WARNING
    assert "6 characters" in finding.message
    assert finding.file.endswith("issue.yaml") and finding.line == 1


def test_long_subject_warns(publication: Path) -> None:
    edit(publication / ISSUE / "issue.yaml", SUBJECT, "subject: " + "Energy, cyber " * 6)
    [finding] = of(check(publication), "content.subject-length")
    assert "too long" in finding.message


def test_empty_subject_is_an_error(publication: Path) -> None:
    edit(publication / ISSUE / "issue.yaml", SUBJECT, 'subject: ""')
    [finding] = of(check(publication), "content.subject")
    assert finding.severity == ERROR


def test_missing_preheader_warns(publication: Path) -> None:
    yaml = publication / ISSUE / "issue.yaml"
    text = yaml.read_text().splitlines()
    yaml.write_text("\n".join(line for line in text if not line.startswith("preheader:")) + "\n")
    [finding] = of(check(publication), "content.preheader")
    assert finding.severity == WARNING


def test_preheader_repeating_the_subject_warns(publication: Path) -> None:
    edit(
        publication / ISSUE / "issue.yaml",
        'preheader: "Four of our scholars',
        'preheader: "Grid queues, ransomware, Egypt\'s squeeze & the tariff trap"\n'
        'x_old: "Four of our scholars',
    )
    [finding] = of(check(publication), "content.preheader-repeat")
    assert "the subject" in finding.message and finding.line == 2


def test_preheader_repeating_the_first_line_of_the_first_piece_warns(publication: Path) -> None:
    energy = (publication / ISSUE / "pieces" / "energy.md").read_text()
    first = energy.split("---\n")[2].strip().splitlines()[0]
    yaml = publication / ISSUE / "issue.yaml"
    lines = [
        f"preheader: {first[:60]!r}" if line.startswith("preheader:") else line
        for line in yaml.read_text().splitlines()
    ]
    yaml.write_text("\n".join(lines) + "\n")
    [finding] = of(check(publication), "content.preheader-repeat")
    assert "first piece" in finding.message


def test_piece_without_title_is_an_error_at_its_line(publication: Path) -> None:
    path = write_piece(publication, "cyber.md", "Some text.", title='""')
    [finding] = of(check(publication), "content.piece-title")
    assert finding.severity == ERROR
    assert (finding.file, finding.line) == (str(path.resolve()), 2)


def test_expert_without_name_is_an_error(publication: Path) -> None:
    edit(publication / "newsletter.yaml", "{name: Elena Marsh,", '{name: "",')
    findings = of(check(publication), "content.piece-expert")
    assert findings and findings[0].file.endswith("energy.md") and findings[0].line == 3


def test_piece_without_body_is_reported_with_file_and_line(publication: Path) -> None:
    write_piece(publication, "cyber.md", "")
    report = check_issue(Publication.load(publication), "2026-11-24", spam=False)
    assert report.facts.get("unbuilt")
    [finding] = report.errors
    assert finding.file.endswith("cyber.md") and finding.line == 5
    assert "no body" in finding.message


def test_leftovers_in_a_piece_are_errors_at_their_lines(publication: Path) -> None:
    path = write_piece(
        publication,
        "cyber.md",
        "First paragraph with a TK figure.\n\nLorem ipsum dolor sit amet.\n\n"
        "Dear {{ name }}, see {% if x %}.\n\nNot leftovers: TKO, todo list, %%first_name%%.",
    )
    findings = of(check(publication), "content.leftover")
    by_line = {(f.line, f.severity) for f in findings if f.file == str(path.resolve())}
    assert by_line == {(6, ERROR), (8, ERROR), (10, ERROR)}
    labels = " ".join(f.message for f in findings)
    assert "TK" in labels and "lorem ipsum" in labels
    assert "{{ }}" in labels and "{% %}" in labels
    assert not any("TKO" in f.message or "todo list" in f.message for f in findings)


def test_todo_in_a_yaml_comment_is_a_warning(publication: Path) -> None:
    yaml = publication / ISSUE / "issue.yaml"
    yaml.write_text("# TODO: ask for a better photo\n" + yaml.read_text())
    [finding] = of(check(publication), "content.leftover")
    assert (finding.severity, finding.line) == (WARNING, 1)


def test_leftover_in_the_footer_is_found_in_the_output_and_located(publication: Path) -> None:
    edit(publication / "newsletter.yaml", "every year.", "every year. TODO check wording.")
    findings = of(check(publication), "content.leftover")
    assert findings and all(f.severity == ERROR for f in findings)
    assert findings[0].file.endswith("newsletter.yaml")


def test_unknown_personalisation_placeholder_warns(publication: Path) -> None:
    write_piece(publication, "cyber.md", "Hello %%frist_name%%, welcome.")
    [finding] = of(check(publication), "content.placeholder")
    assert "%%frist_name%%" in finding.message and finding.file.endswith("cyber.md")
