"""The preference page in headless Chromium, against a real uvicorn server: from the link in an
outbox email to tags and pause in the database, without JavaScript; the stop-one-topic link;
the data download; a crawl of every link changes nothing; axe-core finds no serious or
critical violation; nothing scrolls sideways at 375 px."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import pytest

from newsletter.audience.model import utcnow
from tests.web.conftest import run_in_thread, stop
from tests.web.public.conftest import Site
from tests.web.public.test_preferences import outbox_text, send, state, subscribe

PHONE = {"width": 375, "height": 812}


@pytest.fixture()
def server(site: Site) -> Iterator[str]:
    from newsletter.web.public import create_app

    url, srv, thread = run_in_thread(create_app(site.pub))
    yield url
    stop(srv, thread)


def local(link: str, base: str) -> str:
    return link.replace("https://news.example.org", base)


def links_in(site: Site, address: str, base: str) -> tuple[str, str]:
    text = outbox_text(site, address)
    manage = re.search(r"Manage your subscription: (\S+)", text).group(1)
    stop_link = re.search(r"Stop receiving Energy: (\S+)", text).group(1)
    return local(manage, base), local(stop_link, base)


def test_change_topics_and_pause_from_the_email_link_without_javascript(
        site: Site, server: str, browser, artifacts) -> None:
    from playwright.sync_api import expect

    subscribe(site, "reader@example.com", "energy")
    send(site, "energy")
    manage, _ = links_in(site, "reader@example.com", server)
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    page.goto(manage)
    expect(page.get_by_role("heading", name="Your subscription")).to_be_visible()
    page.get_by_label("Cyber and tech").check()
    page.get_by_label("Energy").uncheck()
    page.get_by_label("Pause for 8 weeks").check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status")).to_have_text("Your choices are saved.")
    page.screenshot(path=str(artifacts / "preferences-saved.png"), full_page=True)
    sub = state(site, "reader@example.com")
    assert sub.tags == ("cyber",)
    expected = utcnow() + dt.timedelta(weeks=8)
    assert abs(sub.paused_until - expected) < dt.timedelta(minutes=5)
    expect(page.get_by_text("Your subscription is paused until")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    data = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert data["profile"]["email"] == "reader@example.com"
    assert data["tags"] == ["cyber"] and data["profile"]["paused_until"]
    context.close()


def test_stop_link_is_one_click_confirmed_by_post(site: Site, server: str, browser) -> None:
    from playwright.sync_api import expect

    subscribe(site, "reader@example.com", "energy", "cyber")
    send(site, "energy")
    _, stop_link = links_in(site, "reader@example.com", server)
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    page.goto(stop_link)
    assert set(state(site, "reader@example.com").tags) == {"energy", "cyber"}  # GET: no change
    page.get_by_role("button", name="Stop receiving Energy").click()
    expect(page.get_by_role("status")).to_have_text("You will no longer receive Energy.")
    assert state(site, "reader@example.com").tags == ("cyber",)
    context.close()


def test_crawling_every_link_changes_nothing(site: Site, server: str, browser) -> None:
    subscribe(site, "reader@example.com", "energy")
    send(site, "energy")
    manage, stop_link = links_in(site, "reader@example.com", server)
    before = state(site, "reader@example.com")
    context = browser.new_context()
    page = context.new_page()
    seen, queue = set(), [manage, stop_link]
    while queue:  # a link scanner: follow every same-site link with GET
        url = queue.pop()
        if url in seen or not url.startswith(server):
            continue
        seen.add(url)
        page.goto(url)
        queue += page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert len(seen) >= 2
    assert state(site, "reader@example.com") == before
    context.close()


def test_axe_finds_no_serious_violation_and_nothing_scrolls_sideways_at_375px(
        site: Site, server: str, browser) -> None:
    from axe_playwright_python.sync_playwright import Axe

    subscribe(site, "reader@example.com", "energy")
    send(site, "energy")
    manage, stop_link = links_in(site, "reader@example.com", server)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    for url in (manage, stop_link):
        page.goto(url)
        results = Axe().run(page)
        bad = [(v["id"], v["impact"]) for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]
        assert bad == [], bad
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        font = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert font >= 16
    context.close()
