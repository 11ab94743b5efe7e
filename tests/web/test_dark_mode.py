"""The sample email in headless Chromium, light and dark: every visible text meets WCAG AA."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.compose import build_issue, write_build
from newsletter.compose.publication import Publication
from tests.conftest import copy_sample
from tests.web.conftest import SLUG

pytestmark = pytest.mark.browser

# For each element with visible text of its own: its computed colour, the first opaque
# background behind it, and their WCAG 2 contrast ratio (computed here, independently).
MEASURE = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lin = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.99)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || +style.opacity === 0 || style.display === "none") continue;
    const fg = rgb(style.color).slice(0, 3), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    out.push({ text: el.textContent.trim().slice(0, 40), ratio: (hi + 0.05) / (lo + 0.05),
               fg: style.color, bg: "rgb(" + bg.join(", ") + ")" });
  }
  return { texts: out, page: lum(background(document.querySelector("h2.headline"))) };
}"""


@pytest.fixture(scope="module")
def email_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("dark") / "pub")
    pub = Publication.load(root)
    target = write_build(pub, build_issue(pub, SLUG))
    page = target / "email.html"
    page.write_text(page.read_text().replace(f"{pub.config.archive_url}{SLUG}/", ""))
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_visible_text_meets_wcag_aa(browser, email_file: Path, artifacts: Path, scheme):
    context = browser.new_context(viewport={"width": 700, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.goto(email_file.as_uri())
    page.wait_for_function("document.images[0] && document.images[0].complete")
    measured = page.evaluate(MEASURE)
    page.screenshot(path=str(artifacts / f"email-{scheme}.png"), full_page=True)
    context.close()
    texts = measured["texts"]
    assert len(texts) > 50  # headlines, bylines, paragraphs, footer
    low = [t for t in texts if t["ratio"] < 4.5]
    assert low == [], low
    if scheme == "dark":
        assert measured["page"] < 0.05  # the pieces sit on a dark background
    else:
        assert measured["page"] > 0.9


def test_images_keep_a_light_plate_in_dark_mode(browser, email_file: Path):
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    page.goto(email_file.as_uri())
    plate = page.evaluate("getComputedStyle(document.images[0]).backgroundColor")
    context.close()
    assert plate == "rgb(255, 255, 255)"
