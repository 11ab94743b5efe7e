"""The preview and the archive in headless Chromium: frames, live reload, errors, forms, links."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.compose.publication import Publication
from newsletter.web.archive import build_archive
from tests.web.conftest import SLUG, RunningServer
from tests.web.test_archive import OLDER, add_older_issue
from tests.web.test_preview_http import add_people

pytestmark = pytest.mark.browser
TIMEOUT = 15_000  # ms; every wait is for a condition, this is only its ceiling
SEND_TIMEOUT = 60_000  # a test send runs the send gate, SpamAssassin included (busy machine)
TITLE = "The transition is stuck in the queue, not in the lab"


@pytest.fixture()
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    yield page
    context.close()


def open_preview(page, preview: RunningServer):
    from playwright.sync_api import expect

    page.goto(preview.url + "/")
    for frame in ("#frame-phone", "#frame-desktop"):
        expect(page.frame_locator(frame).locator("h2.headline").first).to_have_text(TITLE)
    page.evaluate("window.__sameDocument = true")  # gone if the page itself reloads
    return expect


def test_preview_shows_the_issue_at_both_widths(page, preview: RunningServer, artifacts: Path):
    expect = open_preview(page, preview)
    assert page.locator("#frame-phone").bounding_box()["width"] == 375
    assert page.locator("#frame-desktop").bounding_box()["width"] == 700
    expect(page.locator("#inbox .inbox-subject")).to_have_text(
        "Grid queues, ransomware, Egypt's squeeze & the tariff trap"
    )
    expect(page.locator("#h-from")).to_have_text("Example Institute <newsletter@example.org>")
    expect(page.locator("#h-preheader")).to_contain_text("Four of our scholars")
    expect(page.locator("#checks")).to_contain_text("Checks")
    expect(page.locator("#status")).to_contain_text("Built")
    for frame in ("#frame-phone", "#frame-desktop"):
        hero = page.frame_locator(frame).locator('img[src^="/web/hero-"]')
        expect(hero).to_have_count(1)
        hero.evaluate("img => img.complete || new Promise(r => img.onload = r)")
        assert hero.evaluate("img => img.naturalWidth") > 0  # served locally, offline
    # The phone frame has no horizontal scrolling.
    phone = page.frame_locator("#frame-phone").locator("body")
    assert phone.evaluate("b => b.scrollWidth <= window.innerWidth")
    page.screenshot(path=artifacts / "preview.png")
    page.locator("#frame-phone").screenshot(path=artifacts / "preview-phone-375.png")
    page.locator("#frame-desktop").screenshot(path=artifacts / "preview-desktop-700.png")


def test_editing_a_piece_updates_the_page_without_a_reload(page, preview: RunningServer):
    expect = open_preview(page, preview)
    piece = preview.root / "issues" / SLUG / "pieces" / "energy.md"
    piece.write_text(piece.read_text().replace(TITLE, "Grids wait in line"), encoding="utf-8")
    for frame in ("#frame-phone", "#frame-desktop"):
        expect(page.frame_locator(frame).locator("h2.headline").first).to_have_text(
            "Grids wait in line"
        )
    assert page.evaluate("window.__sameDocument") is True


def test_a_broken_manifest_shows_its_error_and_keeps_the_last_build(page, preview: RunningServer):
    expect = open_preview(page, preview)
    manifest = preview.root / "issues" / SLUG / "issue.yaml"
    good = manifest.read_text(encoding="utf-8")
    manifest.write_text(good.replace("date: 2026-11-24", "date: next tuesday"), encoding="utf-8")
    problems = page.locator("#problems")
    expect(problems).to_contain_text(f"issues/{SLUG}/issue.yaml:3")
    expect(problems).to_contain_text("date")
    expect(page.locator("#status")).to_contain_text("Rebuild failed")
    expect(page.frame_locator("#frame-desktop").locator("h2.headline").first).to_have_text(TITLE)

    manifest.write_text(good, encoding="utf-8")
    expect(problems).to_be_empty()
    expect(page.locator("#status")).to_contain_text("Built")
    assert page.evaluate("window.__sameDocument") is True


def test_plain_text_tab(page, preview: RunningServer):
    expect = open_preview(page, preview)
    page.get_by_role("tab", name="Plain text").click()
    text = page.locator("#text")
    expect(text).to_contain_text("POLICY EXPERTS WEEKLY")
    expect(text).to_contain_text("Hello Sample,")
    expect(page.locator("#frame-desktop")).to_be_hidden()


@pytest.mark.slow
def test_preview_as_a_chosen_subscriber(page, preview: RunningServer, database: str):
    add_people(database)
    expect = open_preview(page, preview)
    select = page.locator("#recipient")
    expect(select.locator("option")).to_have_count(3)  # the sample + two subscribers
    page.locator("#recipient-search").fill("alice")
    expect(select.locator("option")).to_have_count(2)
    select.select_option("alice@example.com")
    expect(page.frame_locator("#frame-phone").get_by_text("Hello Alice,")).to_be_visible()
    expect(page.locator("#h-to")).to_have_text("Alice Liddell <alice@example.com>")


def send_test_from_page(page, to: str):
    """Fill in the Send test form, send through the outbox, wait for success; the result line."""
    from playwright.sync_api import expect

    page.locator("#send-to").fill(to)
    page.locator("#send-transport").select_option("outbox")
    page.get_by_role("button", name="Send test").click()
    result = page.locator("#send-result")
    expect(result).to_have_class("ok", timeout=SEND_TIMEOUT)
    return result


def test_send_test_form_sends_through_the_outbox(page, preview: RunningServer, tmp_path: Path):
    expect = open_preview(page, preview)
    result = send_test_from_page(page, "me@example.org, you@example.org")
    expect(result).to_contain_text("Sent a test to me@example.org, you@example.org via outbox")
    sent = sorted((tmp_path / "outbox").rglob("*.eml"))
    assert len(sent) == 2
    message = sent[0].read_bytes()
    assert b"[TEST] Grid queues" in message and b"<me@example.org>" in message


def test_a_cross_site_form_post_is_refused(page, preview: RunningServer):
    open_preview(page, preview)
    token = page.locator("#send-test input[name=csrf]").get_attribute("value")
    evil = page.context.new_page()
    evil.set_content(
        f'<form method="post" action="{preview.url}/send-test">'
        f'<input name="csrf" value="{token}"><input name="to" value="victim@example.org">'
        "<button>go</button></form>"
    )
    with evil.expect_response(preview.url + "/send-test") as caught:
        evil.locator("button").click()
    assert caught.value.status == 403
    assert "cross-site request refused" in caught.value.text()


@pytest.fixture()
def archive_site(publication: Path) -> Iterator[str]:
    """The archive of two issues, served as plain static files on 127.0.0.1."""
    add_older_issue(publication)
    out = build_archive(Publication.load(publication)).folder
    shutil.rmtree(publication / "issues")  # the archive must stand on its own
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_archive_index_links_to_each_issue(page, archive_site: str):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    page.goto(archive_site)
    links = page.locator("ol.issues h2 a")
    expect(links).to_have_count(2)
    assert links.all_inner_texts() == [
        "Grid queues, ransomware, Egypt's squeeze & the tariff trap",
        "Last week: <pipelines> & ports",
    ]
    for index, slug in enumerate((SLUG, OLDER)):
        page.locator("ol.issues h2 a").nth(index).click()
        expect(page).to_have_url(f"{archive_site}{slug}/")
        expect(page.locator("h2.headline").first).to_be_visible()
        hero = page.locator('img[src^="hero-"]')
        hero.evaluate("img => img.complete || new Promise(r => img.onload = r)")
        assert hero.evaluate("img => img.naturalWidth") > 0
        page.get_by_role("link", name="← All issues").click()
        expect(page).to_have_url(archive_site)
    feed = page.request.get(archive_site + "feed.xml")
    assert feed.ok and b"<feed" in feed.body()


def test_dark_mode_toggle_shows_the_dark_palette(page, preview: RunningServer, artifacts: Path):
    expect = open_preview(page, preview)
    background = "getComputedStyle(document.querySelector('.nl-section')).backgroundColor"
    frame = page.frame_locator("#frame-desktop")
    assert frame.locator("body").evaluate(f"() => {background}") == "rgb(255, 255, 255)"
    page.locator("#scheme").click()
    expect(page.locator("#scheme")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#frame-desktop")).to_have_attribute("src", re.compile("scheme=dark"))
    expect(frame.locator("h2.headline").first).to_have_css("color", "rgb(240, 244, 248)")
    assert frame.locator("body").evaluate(f"() => {background}") == "rgb(22, 30, 39)"
    page.screenshot(path=str(artifacts / "preview-dark.png"))
    page.locator("#scheme").click()
    expect(frame.locator("h2.headline").first).to_have_css("color", "rgb(16, 42, 67)")
    assert page.evaluate("window.__sameDocument") is True
