"""The preview on a laptop and a desktop screen, in headless Chromium at 1280, 1440 and 1920 px:
geometry, not pictures. Both email frames and both editions are wholly inside the window with
no sideways scrolling, each laid out at its real width (the wide ones scaled to fit); an Arabic
subject's first words show in the inbox mock-up; Send test personalises as the previewed
subscriber; the Checks panel says when the rebuild failed."""

from __future__ import annotations

from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from newsletter.audience import add_subscriber
from newsletter.db import open_database
from tests.web.conftest import SLUG, RunningServer, run_in_thread, stop
from tests.web.test_preview_browser import send_test_from_page

pytestmark = pytest.mark.browser
TIMEOUT = 15_000
WIDTHS = [1280, 1440, 1920]
HEIGHT = 900
ARABIC = f"{SLUG}-ar"

# The window's and an element's horizontal geometry, as the browser lays it out.
GEOMETRY = """(selector) => {
  const el = document.querySelector(selector);
  const box = el.getBoundingClientRect();
  return {left: box.left, right: box.right, top: box.top, width: box.width,
          scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
          page: document.documentElement.scrollWidth,
          window: document.documentElement.clientWidth};
}"""
# Inside a frame: the width the email is laid out at, and whether it fits it.
INNER = """() => ({width: window.innerWidth, scroll: document.documentElement.scrollWidth})"""


def open_page(browser, url: str, width: int):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    context = browser.new_context(viewport={"width": width, "height": HEIGHT})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(url + "/")
    return context, page, expect


def assert_inside_window(page, selector: str) -> dict:
    """The element's box lies wholly inside the window, and the page does not scroll sideways."""
    box = page.evaluate(GEOMETRY, selector)
    assert box["page"] <= box["window"], f"the page scrolls sideways: {box}"
    assert box["left"] >= 0 and box["right"] <= box["window"], f"{selector} is cut off: {box}"
    assert box["width"] > 0, f"{selector} is not shown"
    return box


@pytest.mark.parametrize("width", WIDTHS)
def test_both_frames_fit_without_sideways_scrolling(browser, preview: RunningServer,
                                                    width: int, artifacts: Path) -> None:
    context, page, expect = open_page(browser, preview.url, width)
    try:
        for frame in ("#frame-phone", "#frame-desktop"):
            expect(page.frame_locator(frame).locator("h2.headline").first).to_be_visible()
        phone = assert_inside_window(page, "#frame-phone")
        desktop = assert_inside_window(page, "#frame-desktop")
        frames = page.evaluate(GEOMETRY, "#panel-email")
        assert frames["scrollWidth"] <= frames["clientWidth"]  # no scrolling inside either
        row = [page.evaluate(GEOMETRY, f".device.{name}") for name in ("phone", "desktop")]
        assert row[0]["top"] == row[1]["top"] and phone["right"] < desktop["left"]  # one row
        assert desktop["top"] < HEIGHT and phone["top"] < HEIGHT  # both in view at once
        inner = {name: page.frame_locator(f"#frame-{name}").locator("body").evaluate(
            f"b => ({INNER})()") for name in ("phone", "desktop")}
        assert inner["phone"]["width"] == 375 and inner["desktop"]["width"] == 700
        assert all(i["scroll"] <= i["width"] for i in inner.values())
        assert phone["width"] == 375
        caption = page.locator(".desktop figcaption .scale")
        if desktop["width"] < 699.5:  # scaled to fit: the caption says by how much
            expect(caption).to_have_text(f"shown at {round(desktop['width'] / 7)}%")
        else:
            assert width == 1920
            expect(caption).to_have_text("")
        page.screenshot(path=artifacts / f"preview-{width}.png")
    finally:
        context.close()


def test_a_narrow_window_stacks_the_frames(browser, preview: RunningServer) -> None:
    """Beside each other the desktop frame would shrink below 60%: it goes under the phone."""
    context, page, expect = open_page(browser, preview.url, 760)
    try:
        expect(page.locator("#panel-email")).to_have_class("frames stacked")
        phone = assert_inside_window(page, "#frame-phone")
        desktop = assert_inside_window(page, "#frame-desktop")
        assert desktop["top"] > phone["top"] + 300 and phone["width"] == 375
        assert desktop["width"] > 0.6 * 700
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_editions_tab_shows_both_editions_whole(browser, preview: RunningServer,
                                                width: int) -> None:
    context, page, expect = open_page(browser, preview.url, width)
    try:
        page.locator("#tab-editions").click()
        for lang in ("en", "ar"):
            expect(page.frame_locator(f"#frame-edition-{lang}").locator("h2.headline").first
                   ).to_be_visible()
        boxes = {lang: assert_inside_window(page, f"#frame-edition-{lang}")
                 for lang in ("en", "ar")}
        panel = page.evaluate(GEOMETRY, "#panel-editions")
        assert panel["scrollWidth"] <= panel["clientWidth"]
        assert boxes["ar"]["right"] <= panel["left"] + panel["clientWidth"]
        arabic = page.frame_locator("#frame-edition-ar")
        inner = arabic.locator("body").evaluate(f"b => ({INNER})()")
        assert inner == {"width": 600, "scroll": inner["scroll"]} and inner["scroll"] <= 600
        # Arabic lines start at the right edge: the first paragraph's right end is inside the
        # frame's 600 px, and the frame is wholly inside the window
        right = arabic.locator("p[lang=ar], [lang=ar] p").first.evaluate(
            "p => p.getBoundingClientRect().right")
        assert 0 < right <= 600
    finally:
        context.close()


@pytest.fixture()
def arabic_preview(publication: Path, database: str) -> Iterator[RunningServer]:
    """The preview of the sample's Arabic edition, its preheader made long enough that the
    inbox line is cut even at 1920 px (the sample's own keeps within 100 characters)."""
    from newsletter.web.preview import create_app

    manifest = publication / "issues" / ARABIC / "issue.yaml"
    longer = "عدد هذا الأسبوع عن الطاقة والأمن السيبراني والاقتصاد المصري والتجارة الدولية، "
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        'preheader: "', 'preheader: "' + longer * 2, 1), encoding="utf-8")
    app = create_app(publication, publication / "issues" / ARABIC, watch=False)
    url, server, thread = run_in_thread(app)
    yield RunningServer(url, app, publication)
    stop(server, thread)


FIRST_WORD = """(line) => {
  const subject = line.querySelector(".inbox-subject");
  const text = subject.firstChild;
  const range = document.createRange();
  const end = text.textContent.indexOf(" ");
  range.setStart(text, 0);
  range.setEnd(text, end);
  const word = range.getBoundingClientRect(), box = line.getBoundingClientRect();
  return {word: [word.left, word.right], line: [box.left, box.right],
          direction: getComputedStyle(line).direction,
          overflows: line.scrollWidth > line.clientWidth};
}"""


@pytest.mark.parametrize("width", WIDTHS)
def test_an_arabic_subject_starts_visible_in_the_inbox_mockup(browser, arabic_preview,
                                                               width: int) -> None:
    context, page, expect = open_page(browser, arabic_preview.url, width)
    try:
        line = page.locator("#inbox .inbox-line")
        expect(line).to_contain_text("طوابير")
        found = line.evaluate(FIRST_WORD)
        assert found["direction"] == "rtl"
        assert found["overflows"], "the line is long enough to be cut somewhere"
        (left, right), (line_left, line_right) = found["word"], found["line"]
        assert line_left <= left < right <= line_right + 0.5, found  # wholly visible
        assert line_right - right < 2, found  # and where an Arabic line starts: the right
    finally:
        context.close()


def test_send_test_personalises_as_the_previewed_subscriber(browser, preview: RunningServer,
                                                            database: str,
                                                            tmp_path: Path) -> None:
    engine = open_database(database)
    with engine.begin() as conn:
        add_subscriber(conn, "marie.dubois@example.com", name="Marie Dubois",
                       attributes={"city": "Lyon"})
    engine.dispose()
    context, page, expect = open_page(browser, preview.url, 1440)
    try:
        select = page.locator("#recipient")
        expect(select.locator("option")).to_have_count(2)
        select.select_option("marie.dubois@example.com")
        expect(page.frame_locator("#frame-phone").get_by_text("Hello Marie,")).to_be_visible()
        expect(page.locator("#send-as-name")).to_have_text("Marie Dubois")
        result = send_test_from_page(page, "editor@example.org")
        expect(result).to_contain_text("Personalised as Marie Dubois")
    finally:
        context.close()
    [sent] = sorted((tmp_path / "outbox").rglob("*.eml"))
    message = BytesParser(policy=policy.default).parsebytes(sent.read_bytes())
    assert message["To"].addresses[0].addr_spec == "editor@example.org"  # to the tester
    text = message.get_body(("plain",)).get_content()
    assert "Hello Marie," in text and "Sample" not in text
    assert "Hello Marie," in message.get_body(("html",)).get_content()


def test_checks_panel_says_when_the_rebuild_failed(browser, preview: RunningServer) -> None:
    context, page, expect = open_page(browser, preview.url, 1440)
    try:
        checks = page.locator("#checks")
        expect(checks).to_contain_text("all clear")
        manifest = preview.root / "issues" / SLUG / "issue.yaml"
        good = manifest.read_text(encoding="utf-8")
        manifest.write_text(good.replace("date: 2026-11-24", "date: next tuesday"),
                            encoding="utf-8")
        expect(checks).to_contain_text("rebuild failed")
        expect(checks).to_contain_text("The issue as saved does not build")
        expect(checks).not_to_contain_text("all clear")
        expect(checks).not_to_contain_text("No problems found")
        manifest.write_text(good, encoding="utf-8")
        expect(checks).to_contain_text("all clear")
        expect(checks).not_to_contain_text("rebuild failed")
    finally:
        context.close()
