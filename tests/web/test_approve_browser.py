"""The preview's Approve button, in headless Chromium: it records the approval of the version
on show, refuses a cross-site post, and an edit shows the approval no longer counts."""

from __future__ import annotations

import pytest

from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.db import open_database
from newsletter.dispatch.approval import approvals_of, content_of
from tests.web.conftest import SLUG, RunningServer
from tests.web.test_preview_browser import TIMEOUT, open_preview

pytestmark = pytest.mark.browser


@pytest.fixture()
def tab(browser):
    """A page in a fresh browser context, wide enough for the preview."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    yield page
    context.close()


@pytest.mark.slow
def test_approve_button_records_the_version_on_show(tab, preview: RunningServer,
                                                   database: str) -> None:
    expect = open_preview(tab, preview)
    config = preview.root / "newsletter.yaml"
    config.write_text(config.read_text().replace(
        "approval: {required: false, approvers: 1}", "approval: {required: true, approvers: 2}"))
    tab.reload()
    open_preview(tab, preview)
    result = tab.locator("#approve-result")
    expect(result).to_have_text("not approved (needs 2 approvals)")
    tab.locator("#approver").fill("Ana Lima")
    tab.get_by_role("button", name="Approve this version").click()
    expect(result).to_have_class("ok")
    expect(result).to_have_text("approved by Ana Lima (1 of 2); needs 1 more approval")
    pub = Publication.load(preview.root)
    engine = open_database(database)
    try:
        [given] = approvals_of(engine, SLUG)
        assert given.approver == "Ana Lima"
        assert given.content == content_of(pub, build_issue(pub, SLUG))
    finally:
        engine.dispose()

    # an edit: the live reload shows the approval no longer counts
    piece = preview.root / "issues" / SLUG / "pieces" / "energy.md"
    piece.write_text(piece.read_text().replace("plug in?", "plug in at all?"))
    expect(result).to_contain_text("Ana Lima approved an earlier version")


@pytest.mark.slow
def test_approve_refuses_content_that_fails_the_checks(tab, preview: RunningServer,
                                                      database: str) -> None:
    expect = open_preview(tab, preview)
    piece = preview.root / "issues" / SLUG / "pieces" / "energy.md"
    piece.write_text(piece.read_text() + "\nTODO: the ending.\n")
    expect(tab.frame_locator("#frame-desktop").get_by_text("TODO: the ending.")).to_be_visible()
    tab.locator("#approver").fill("Ana Lima")
    tab.get_by_role("button", name="Approve this version").click()
    result = tab.locator("#approve-result")
    expect(result).to_have_class("bad")
    expect(result).to_contain_text("leftover placeholder TODO")
    # SpamAssassin's full checks finish later and refresh the page's parts: the refusal and
    # its reason stay on show (the content did not change)
    expect(tab.locator(".spam-done")).to_be_attached(timeout=60_000)
    expect(result).to_have_class("bad")
    expect(result).to_contain_text("leftover placeholder TODO")
    engine = open_database(database)
    try:
        assert approvals_of(engine, SLUG) == []
    finally:
        engine.dispose()


def test_a_cross_site_approval_is_refused(tab, preview: RunningServer, database: str) -> None:
    open_preview(tab, preview)
    token = tab.locator("#approve input[name=csrf]").get_attribute("value")
    evil = tab.context.new_page()
    evil.set_content(f'<form method="post" action="{preview.url}/approve">'
                     f'<input name="csrf" value="{token}"><input name="name" value="Mallory">'
                     "<button>go</button></form>")
    with evil.expect_response(preview.url + "/approve") as caught:
        evil.locator("button").click()
    assert caught.value.status == 403
    with preview.client() as client:  # no session cookie, no valid token
        answer = client.post("/approve", data={"csrf": "x", "name": "Mallory"},
                             headers={"Origin": preview.url})
    assert answer.status_code == 403
    engine = open_database(database)
    try:
        assert approvals_of(engine, SLUG) == []
    finally:
        engine.dispose()
