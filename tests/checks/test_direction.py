"""The direction checks: script against declared language, missing chrome strings, notes."""

from __future__ import annotations

from pathlib import Path

from newsletter.checks import run
from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from tests.checks.conftest import check, edit, of, write_piece
from tests.conftest import SAMPLE_SLUG

ARABIC = f"{SAMPLE_SLUG}-ar"
ARABIC_TEXT = "هذه فقرة مكتوبة بالعربية كلها، عن الطاقة والشبكات والأسعار في المنطقة. " * 3


def check_arabic(root: Path):
    pub = Publication.load(root)
    return run(pub, build_issue(pub, ARABIC), spam=False)


def test_the_sample_editions_have_no_direction_findings(publication: Path) -> None:
    assert of(check(publication), "direction.mismatch") == []
    report = check_arabic(publication)
    assert of(report, "direction.mismatch") == [] and of(report, "direction.strings") == []
    assert any("dir attribute" in note for note in report.facts["direction"])
    assert "direction" not in check(publication).facts  # an all-LTR issue needs no note


def test_arabic_text_in_an_english_piece_is_reported_at_its_file_and_line(
    publication: Path,
) -> None:
    piece = write_piece(publication, "energy.md", ARABIC_TEXT, title="عنوان")
    found = of(check(publication), "direction.mismatch")
    assert len(found) == 1
    assert found[0].file == str(piece) and found[0].line == 2  # the title line
    assert "mostly right-to-left" in found[0].message and "'en'" in found[0].message
    # declaring the language fixes it, and the line then points at lang:
    piece.write_text(f"---\ntitle: عنوان\nexpert: elena-marsh\nlang: ar\n---\n\n{ARABIC_TEXT}\n",
                     encoding="utf-8")
    assert of(check(publication), "direction.mismatch") == []


def test_english_piece_without_lang_in_an_arabic_issue(publication: Path) -> None:
    piece = publication / "issues" / ARABIC / "pieces" / "cyber.md"
    edit(piece, "lang: en\n", "")
    found = of(check_arabic(publication), "direction.mismatch")
    assert [(f.file, f.line) for f in found] == [(str(piece), 2)]
    assert "mostly left-to-right" in found[0].message and "'ar'" in found[0].message


def test_an_issue_whose_subject_disagrees_with_its_language(publication: Path) -> None:
    manifest = publication / "issues" / ARABIC / "issue.yaml"
    edit(manifest, "language: ar", "language: fr")
    report = check_arabic(publication)
    head = [f for f in of(report, "direction.mismatch") if f.file == str(manifest)]
    assert len(head) == 1 and head[0].line == 4  # language: is on line 4


def test_missing_chrome_strings_are_reported(publication: Path) -> None:
    manifest = publication / "issues" / ARABIC / "issue.yaml"
    edit(manifest, "language: ar", "language: ur")  # right-to-left, no shipped catalogue
    found = of(check_arabic(publication), "direction.strings")
    assert len(found) == 1 and found[0].file == str(manifest) and found[0].line == 4
    assert "no 'ur' words" in found[0].message
    config = publication / "newsletter.yaml"
    from newsletter.compose import i18n

    words = ", ".join(f"{k}: x" for k in i18n.reference_keys())
    config.write_text(config.read_text() + f"strings: {{ur: {{{words}}}}}\n", encoding="utf-8")
    assert of(check_arabic(publication), "direction.strings") == []


def test_an_edition_without_translated_chrome_is_warned_about(publication: Path) -> None:
    config = publication / "newsletter.yaml"
    assert of(check_arabic(publication), "direction.chrome") == []  # the sample translates it
    edit(config, "    name: خبراء السياسات أسبوعيًا\n", "")
    edit(config, "    footer: >-", "    unused_footer: >-")
    [finding] = of(check_arabic(publication), "direction.chrome")
    assert finding.severity == "warning" and finding.file == str(config)
    assert config.read_text().splitlines()[finding.line - 1].startswith("translations:")
    assert "name, footer" in finding.message and "'ar'" in finding.message
    assert "translations: {ar: {name: ..., footer: ...}}" in finding.fix
    # the English edition, in the publication's own language, needs none
    assert of(check(publication), "direction.chrome") == []
    # without any translations, all five are named
    text = config.read_text()
    config.write_text(text[:text.index("translations:")] + text[text.index("approval:"):])
    [finding] = of(check_arabic(publication), "direction.chrome")
    assert "name, publisher, footer, address, from_name" in finding.message
    assert finding.line is None
