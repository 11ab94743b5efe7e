"""Languages: catalogues, per-issue and per-piece language and direction, marks and isolation."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import html as lxml_html

from newsletter.compose import build_issue, i18n
from newsletter.compose.bidi import LRM, RLM, ltr_runs, mark_lines
from newsletter.compose.publication import Publication
from tests.conftest import SAMPLE_SLUG, sample_build

ARABIC = f"{SAMPLE_SLUG}-ar"
FIELD = re.compile(r"\{(\w+)\}")


@pytest.mark.parametrize("lang", i18n.shipped_languages())
def test_every_shipped_catalogue_has_every_string(lang: str) -> None:
    reference = i18n.catalogue(i18n.REFERENCE)
    words = i18n.catalogue(lang)
    assert set(words) == set(reference), f"{lang}.yaml: missing {set(reference) - set(words)}"
    assert i18n.missing_strings(lang) == []
    for key, value in words.items():
        assert value.strip(), f"{lang}.yaml: '{key}' is empty"
        assert set(FIELD.findall(value)) == set(FIELD.findall(reference[key])), (lang, key)


def test_the_required_languages_ship() -> None:
    assert {"en", "ar", "fr", "fa", "he", "tr"} <= set(i18n.shipped_languages())


@pytest.mark.parametrize(("lang", "expected"), [
    ("ar", "rtl"), ("ar-EG", "rtl"), ("fa", "rtl"), ("he", "rtl"), ("ur", "rtl"), ("ps", "rtl"),
    ("ckb", "rtl"), ("yi", "rtl"), ("en", "ltr"), ("fr", "ltr"), ("tr", "ltr"), ("arn", "ltr"),
])
def test_direction_follows_the_language(lang: str, expected: str) -> None:
    assert i18n.direction(lang) == expected
    assert i18n.direction(lang, "ltr") == "ltr"


def _doc(html: str):
    return lxml_html.document_fromstring(html)


def test_arabic_edition_html_language_and_direction() -> None:
    pub, build = sample_build(ARABIC)
    doc = _doc(build.html)
    assert (doc.get("lang"), doc.get("dir")) == ("ar", "rtl")
    english = doc.xpath("//div[@lang='en']")
    assert len(english) == 1 and english[0].get("dir") == "ltr"
    assert "Small utilities" in english[0].text_content()
    # the chrome is Arabic; the English piece keeps its own byline words
    text = doc.text_content()
    for word in ("بقلم", "تابِع على تويتر", "إلغاء الاشتراك", "اعرضها في المتصفح"):
        assert word in text
    assert "View in browser" not in text and "Unsubscribe" not in text
    assert "By " in english[0].text_content()
    # the handle, the URL-like text and the email address sit in LTR isolates
    isolated = [s.text for s in doc.xpath("//span[@dir='ltr']")]
    assert "@elenamarsh_nrg" in isolated and "research@example.org" in isolated
    assert "Karim Mansour" in isolated
    # the English edition links to the Arabic one and back
    assert doc.xpath(f"//a[@hreflang='en'][@href='{pub.config.archive_url}{SAMPLE_SLUG}/']")
    english_doc = _doc(sample_build(SAMPLE_SLUG)[1].html)
    assert english_doc.xpath(f"//a[@hreflang='ar'][@lang='ar'][@dir='rtl']"
                             f"[@href='{pub.config.archive_url}{ARABIC}/']")


def test_text_part_lines_begin_with_their_direction_mark() -> None:
    text = sample_build(ARABIC)[1].text
    lines = [line for line in text.split("\n") if line.strip()]
    assert all(line[0] in (RLM, LRM) for line in lines)
    english_start = next(i for i, line in enumerate(lines) if "Small utilities" in line)
    assert lines[english_start][0] == LRM
    assert lines[english_start + 1].startswith(LRM + "By Tomás Reyes")
    assert any(line.startswith(LRM + "Follow on Twitter: @tomasreyes") for line in lines)
    arabic = [line for line in lines if any(
        unicodedata.bidirectional(c) == "AL" for c in line[:12])]
    assert arabic and all(line[0] == RLM for line in arabic)
    # an all-English issue carries no marks at all
    english = sample_build(SAMPLE_SLUG)[1].text
    assert RLM not in english and LRM not in english


def test_overrides_and_native_digits(publication: Path) -> None:
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text() + "strings: {ar: {follow: تابعوا الكاتب}}\n"
                      "digits: native\n", encoding="utf-8")
    pub = Publication.load(publication)
    build = build_issue(pub, ARABIC)
    assert "تابعوا الكاتب" in build.html and "تابِع على تويتر" not in build.html
    assert "٢٤ نوفمبر ٢٠٢٦" in build.text
    assert "24 November 2026" in build_issue(pub, SAMPLE_SLUG).text  # Latin digits in English


@given(st.text(alphabet=st.sampled_from(list("abc XY@.:/،؟ 12٣سلام-_'\"()")), max_size=60))
def test_ltr_runs_cover_every_latin_letter_and_nothing_arabic(text: str) -> None:
    parts = ltr_runs(text)
    assert "".join(piece for piece, _ in parts) == text
    position = 0
    for piece, ltr in parts:
        kinds = {unicodedata.bidirectional(c) for c in piece}
        if ltr:
            assert not kinds & {"R", "AL"} and kinds & {"L", "EN"}
        else:  # reference: a Latin letter outside a run must share its word with Arabic
            for offset, char in enumerate(piece):
                if unicodedata.bidirectional(char) == "L":
                    start = text.rfind(" ", 0, position + offset) + 1
                    end = text.find(" ", position + offset)
                    word = text[start:] if end < 0 else text[start:end]
                    assert {unicodedata.bidirectional(c) for c in word} & {"R", "AL"}, word
        position += len(piece)


@given(st.text(max_size=80))
def test_mark_lines_marks_each_nonempty_line_once(text: str) -> None:
    marked = mark_lines(text, "rtl")
    for before, after in zip(text.split("\n"), marked.split("\n"), strict=True):
        if before.strip() and before[0] not in (RLM, LRM):
            assert after == RLM + before
        else:
            assert after == before


def test_expert_words_follow_the_piece_language() -> None:
    doc = _doc(sample_build(ARABIC)[1].html)
    bylines = [p.text_content() for p in doc.find_class("byline")]
    assert bylines[0] == "بقلم سميرة حداد، زميلة أولى، برنامج الشرق الأوسط"
    assert bylines[1].startswith("بقلم Elena Marsh، ")  # no Arabic name given: as written
    assert bylines[3] == "By Tomás Reyes, Director, Cyber Policy Initiative"  # lang: en piece


@pytest.mark.parametrize("bad", ["Arabic", "a", "ar-", "عربي"])
def test_a_language_that_is_not_a_tag_is_an_error_with_its_line(publication: Path,
                                                                bad: str) -> None:
    from newsletter.core.errors import InputError

    manifest = publication / "issues" / ARABIC / "issue.yaml"
    manifest.write_text(manifest.read_text().replace("language: ar", f"language: '{bad}'"),
                        encoding="utf-8")
    with pytest.raises(InputError) as caught:
        build_issue(Publication.load(publication), ARABIC)
    [problem] = caught.value.problems
    assert problem.line == 4 and "not a language tag" in problem.message
