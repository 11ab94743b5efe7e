"""Per-language chrome: `translations:` in newsletter.yaml give an edition the publication's own
words (name, publisher, footer, address, From name); a paragraph left in the other direction
gets its own `dir`, so an untranslated English footer reads correctly in an Arabic edition."""

from __future__ import annotations

import email
import email.policy
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from newsletter.compose import build_issue
from newsletter.compose.bidi import LRM, RLM, first_strong, mark_blocks, own_direction
from newsletter.compose.publication import Publication
from newsletter.core.personalise import SAMPLE_RECIPIENT, personalise
from tests.compose.helpers import SAMPLE

ARABIC = f"{SAMPLE}-ar"
ENGLISH_FOOTER = "The views expressed in this newsletter are those of the individual authors"


def _without_arabic_chrome(root: Path) -> None:
    """Drop `translations:` from the sample's newsletter.yaml."""
    config = root / "newsletter.yaml"
    text = config.read_text(encoding="utf-8")
    start, end = text.index("translations:"), text.index("approval:")
    config.write_text(text[:start] + text[end:], encoding="utf-8")


def _build(root: Path, slug: str = ARABIC):
    pub = Publication.load(root)
    return pub, build_issue(pub, slug)


def test_an_edition_uses_its_translations(publication: Path) -> None:
    pub, build = _build(publication)
    words = pub.config.translations["ar"]
    doc = lxml_html.document_fromstring(build.html)
    assert doc.findtext(".//h1") == words.name
    text = doc.text_content()
    assert "الآراء الواردة في هذه النشرة" in text and ENGLISH_FOOTER not in text
    assert f"{words.publisher} · {words.address}" in " ".join(text.split())
    assert "Policy Experts Weekly" not in text  # the masthead and the "why you get this" line
    message = email.message_from_bytes(build.message, policy=email.policy.default)
    assert message["From"].addresses[0].display_name == words.from_name
    assert message["List-Id"] == "Policy Experts Weekly <policy-experts-weekly.example.org>"
    assert build.config.name == words.name and pub.config.name == "Policy Experts Weekly"
    # the English edition keeps the words as written
    _, english = _build(publication, SAMPLE)
    assert ENGLISH_FOOTER in lxml_html.document_fromstring(english.html).text_content()
    message = email.message_from_bytes(english.message, policy=email.policy.default)
    assert message["From"].addresses[0].display_name == "Example Institute"


def test_a_translation_by_base_language_and_partial_translations(publication: Path) -> None:
    pub = Publication.load(publication)
    assert pub.config.edition_config("ar-EG").name == pub.config.translations["ar"].name
    partial = pub.config.model_copy(update={"translations": {
        "fr": pub.config.translations["ar"].model_copy(update={
            "name": "Experts en politiques", "publisher": None, "footer": None,
            "address": None, "from_name": None})}})
    french = partial.edition_config("fr")
    assert french.name == "Experts en politiques" and french.footer == pub.config.footer
    assert french.sender == pub.config.sender
    assert partial.untranslated_chrome("fr") == ["publisher", "footer", "address", "from_name"]
    assert partial.untranslated_chrome("en") == []  # the publication's own language
    assert partial.edition_config("de") is partial


def test_untranslated_english_footer_gets_its_own_direction(publication: Path) -> None:
    _without_arabic_chrome(publication)
    _, build = _build(publication)
    for page in (build.html, build.web_html):
        doc = lxml_html.document_fromstring(page)
        [footer] = [p for p in doc.iter("p") if ENGLISH_FOOTER in p.text_content()]
        assert footer.get("dir") == "ltr" and footer.get("style").endswith("text-align:left")
        assert not footer.xpath(".//span[@dir='ltr']")  # no need to isolate runs inside it
    # the Arabic "why you get this" line stays right to left, its Latin name isolated
    doc = lxml_html.document_fromstring(build.html)
    [reason] = [p for p in doc.iter("p") if "تصلك هذه الرسالة" in p.text_content()]
    assert reason.get("dir") is None
    assert "Policy Experts Weekly" in reason.xpath(".//span[@dir='ltr']/text()")
    lines = build.text.splitlines()
    start = next(i for i, line in enumerate(lines) if "The views expressed in" in line)
    block = lines[start:lines.index("", start)]
    assert len(block) >= 3 and all(line.startswith(LRM) for line in block)
    assert next(line for line in lines if "تصلك" in line).startswith(RLM)


def test_arabic_paragraph_opening_with_a_latin_name_stays_right_to_left() -> None:
    assert first_strong("Example Institute هو معهد بحثي مستقل يدرس السياسات العامة") == "ltr"
    assert own_direction("Example Institute هو معهد بحثي مستقل يدرس السياسات العامة") is None
    assert own_direction("The views expressed — الآراء — are the authors' own.") == "ltr"
    assert own_direction("١٢٣ ...") is None and first_strong("123 ...") is None


def _reference_first_strong(text: str) -> str | None:
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL", "L"):
            return "ltr" if kind == "L" else "rtl"
    return None


@settings(max_examples=60)
@given(st.text(alphabet=st.sampled_from("ab Zé.,1٣ سلام עב-\n"), max_size=40))
def test_first_strong_agrees_with_a_plain_reading(text: str) -> None:
    assert first_strong(text) == _reference_first_strong(text)
    direction = own_direction(text)
    assert direction in (None, _reference_first_strong(text))


@settings(max_examples=60)
@given(st.lists(st.text(alphabet=st.sampled_from("ab سل .1"), min_size=1, max_size=20)
                .filter(lambda s: s.strip()), min_size=1, max_size=5))
def test_mark_blocks_marks_every_line_once_by_its_block(blocks: list[str]) -> None:
    text = "\n\n".join(blocks)
    marked = mark_blocks(text, "rtl")
    assert marked.replace(RLM, "").replace(LRM, "") == text  # only marks added
    for block, out in zip(blocks, marked.split("\n\n"), strict=True):
        want = {"ltr": LRM}.get(own_direction(block), RLM)
        assert all(line.startswith(want) for line in out.split("\n") if line.strip()), out


@pytest.mark.browser
def test_untranslated_footer_reads_in_order_in_chromium(browser, publication: Path) -> None:
    """The issue's complaint, in a browser: in the Arabic edition, "funders & donors" read
    "donors & funders" and the full stop started the line."""
    _without_arabic_chrome(publication)
    _, build = _build(publication)
    html, _ = personalise(build.html, build.text, SAMPLE_RECIPIENT, "https://x.example.org/u")
    page = browser.new_page(viewport={"width": 600, "height": 900})
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    page.set_content(html, wait_until="load")
    try:
        found = page.evaluate("""() => {
          const p = [...document.querySelectorAll("p")].find(
            el => el.textContent.includes("funders & donors"));
          const x = (word) => {  // where the last `word` is drawn: line first, then x
            const walker = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
            let found = null;
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
              const i = node.textContent.lastIndexOf(word);
              if (i >= 0) found = [node, i];
            }
            const r = document.createRange(); r.setStart(found[0], found[1]);
            r.setEnd(found[0], found[1] + word.length); const box = r.getBoundingClientRect();
            return [Math.round(box.top), box.left];
          };
          return {direction: getComputedStyle(p).direction, align: getComputedStyle(p).textAlign,
                  funders: x("funders"), donors: x("donors"), year: x("year"), stop: x(".")};
        }""")
        assert found["direction"] == "ltr" and found["align"] == "left"
        assert found["funders"] < found["donors"]
        assert found["year"] < found["stop"]  # the full stop ends the sentence, on the right
    finally:
        page.close()
