"""The Arabic edition in headless Chromium, at phone and desktop widths, and in the preview."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.compose import build_issue, i18n
from newsletter.compose.publication import Publication
from newsletter.core.personalise import SAMPLE_RECIPIENT, personalise
from tests.web.conftest import SLUG, RunningServer

pytestmark = pytest.mark.browser
ARABIC = f"{SLUG}-ar"
TIMEOUT = 15_000

# For every text node: its nearest [lang], its parent's computed direction and alignment.
TEXT_NODES = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    if (!text) continue;
    const el = node.parentElement;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden" || style.opacity === "0"
        || style.maxHeight === "0px") continue;
    out.push({text, lang: el.closest("[lang]").getAttribute("lang"), tag: el.tagName,
              direction: style.direction});
  }
  return out;
}"""
PARAGRAPHS = """() => [...document.querySelectorAll("p, li, h2")].map(el => ({
  lang: el.closest("[lang]").getAttribute("lang"), text: el.textContent.trim(),
  direction: getComputedStyle(el).direction, align: getComputedStyle(el).textAlign}))"""


def _english_chrome() -> list[str]:
    """Fragments of the English catalogue that an Arabic reader must never see."""
    english, arabic = i18n.catalogue("en"), i18n.catalogue("ar")
    fragments = []
    for key, value in english.items():
        if key in ("date_format", "read_in") or value == arabic[key]:
            continue  # read_in is the link to the English edition, marked lang="en"
        fragments += [f.strip(" ,.:") for f in re.split(r"\{\w+\}", value) if f.strip(" ,.:")]
    return fragments


@pytest.fixture(scope="module")
def arabic_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.conftest import copy_sample

    pub = Publication.load(copy_sample(tmp_path_factory.mktemp("rtl") / "pub"))
    build = build_issue(pub, ARABIC)
    html, _ = personalise(build.html, build.text, SAMPLE_RECIPIENT, "https://x.example.org/u")
    return html


@pytest.mark.parametrize("width", [375, 600])
@pytest.mark.slow
def test_arabic_edition_reads_right_to_left(browser, arabic_html: str, width: int,
                                            artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.route(re.compile(r"^https?://"), lambda route: route.abort())  # offline
    page.set_content(arabic_html, wait_until="load")
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no side scroll
        paragraphs = page.evaluate(PARAGRAPHS)
        arabic = [p for p in paragraphs if p["lang"] == "ar" and p["text"]]
        english = [p for p in paragraphs if p["lang"] == "en" and p["text"]]
        assert len(arabic) > 15 and len(english) >= 4
        for p in arabic:
            assert (p["direction"], p["align"]) == ("rtl", "right"), p
        for p in english:
            assert (p["direction"], p["align"]) == ("ltr", "left"), p
        nodes = page.evaluate(TEXT_NODES)
        handles_and_urls = [n for n in nodes if re.search(r"@\w|https?://|\w@\w", n["text"])]
        assert len(handles_and_urls) >= 5
        for node in handles_and_urls:
            assert node["direction"] == "ltr", node
        seen = " ".join(n["text"] for n in nodes if n["lang"] == "ar")
        footer = Publication.load(Path(__file__).resolve().parents[2]).config.footer
        for fragment in _english_chrome():
            found = re.search(rf"\b{re.escape(fragment)}\b", seen)
            assert not found or fragment in footer, f"English chrome left: {fragment!r}"
        page.screenshot(path=artifacts / f"arabic-{width}.png", full_page=True)
    finally:
        context.close()


@pytest.mark.slow
def test_preview_offers_the_editions_side_by_side(browser, preview: RunningServer) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    try:
        page.goto(preview.url + "/")
        page.locator("#tab-editions").click()
        for lang, direction in (("en", "ltr"), ("ar", "rtl")):
            frame = page.frame_locator(f"#frame-edition-{lang}")
            expect(frame.locator("h2.headline").first).to_be_visible()
            assert frame.locator("html").get_attribute("dir") == direction
        boxes = [page.locator(f"#frame-edition-{x}").bounding_box() for x in ("en", "ar")]
        assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]  # side by side
        hero = f'img[src^="/editions/{ARABIC}/hero-"]'  # the build's content-hashed name
        expect(page.frame_locator("#frame-edition-ar").locator(hero)).to_have_count(1)
    finally:
        context.close()
