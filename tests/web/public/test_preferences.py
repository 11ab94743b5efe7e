"""The preference page: the footer link from a real send, topics, pause, stop one topic,
unsubscribe from everything, data export, CSRF, and that GETs never change anything.

Runs on SQLite and PostgreSQL (the `site` fixture); browser tests drive headless Chromium
against a real uvicorn server.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import re
import shutil
from email import policy
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from newsletter.audience import Segments, add_subscriber, get_subscriber
from newsletter.audience.history import history_of
from newsletter.cli import main
from newsletter.core.tokens import make_token, preferences_url
from newsletter.db.engine import write_connection
from newsletter.db.tables import subscriber_history
from tests.web.public.conftest import SECRET, Site

SLUG = "2026-11-24"


def send(site: Site, segment: str) -> None:
    result = CliRunner().invoke(main, ["-C", str(site.root), "send", SLUG, "--segment", segment,
                                       "--yes", "--again"], env=site.env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def outbox_text(site: Site, address: str) -> str:
    """The plain-text part of the last message sent to `address`."""
    found = None
    for path in sorted(site.outbox.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if msg["To"].addresses[0].addr_spec == address:
            found = msg
    assert found is not None, f"nothing sent to {address}"
    return found.get_body(("plain",)).get_content()


def subscribe(site: Site, address: str, *tags: str) -> None:
    # Read-then-write: take SQLite's write lock up front, as the product does (a server in the
    # test may commit in between).
    with write_connection(site.engine) as conn, conn.begin():
        add_subscriber(conn, address, name="Reader", tags=tags)


def path_of(site: Site, address: str, secret: str = SECRET) -> str:
    return "/" + preferences_url(site.pub.config.public_url, secret, address).removeprefix(
        site.pub.config.public_url)


def csrf_of(page_text: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page_text).group(1)


def state(site: Site, address: str):
    with site.engine.connect() as conn:
        return get_subscriber(conn, address)


def test_footer_links_to_the_page_and_offers_the_topic_of_a_one_topic_segment(site: Site) -> None:
    subscribe(site, "reader@example.com", "energy")
    send(site, "energy")  # segments.yaml: energy: {tag: energy}
    text = outbox_text(site, "reader@example.com")
    manage = re.search(r"Manage your subscription: (\S+)", text).group(1)
    stop = re.search(r"Stop receiving Energy: (\S+)", text).group(1)
    assert manage.startswith("https://news.example.org/preferences/")
    assert stop == manage + "?stop=energy"
    token = urlsplit(manage).path.rsplit("/", 1)[1]
    assert token == make_token(SECRET, "preferences", "reader@example.com")
    # List-Unsubscribe stays the whole-list one-click link
    assert "/unsubscribe/" in text
    send(site, "everyone")  # not a one-topic segment: no "Stop receiving"
    assert "Stop receiving" not in outbox_text(site, "reader@example.com")


def test_post_saves_topics_language_and_pause_with_the_audit_trail(site: Site, client) -> None:
    subscribe(site, "reader@example.com", "energy", "staff")
    path = path_of(site, "reader@example.com")
    page = client.get(path)
    assert page.status_code == 200 and "Energy" in page.text
    response = client.post(path, data={"csrf": csrf_of(page.text), "action": "save",
                                       "topics": ["cyber"], "pause": "8"})
    assert response.status_code == 200, response.text
    sub = state(site, "reader@example.com")
    assert set(sub.tags) == {"cyber", "staff"}  # topics replaced; other tags kept
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(weeks=8)
    assert abs(sub.paused_until - expected) < dt.timedelta(minutes=5)
    with site.engine.connect() as conn:
        trail = {(e.source, e.field, e.before, e.after) for e in history_of(conn, sub.id)}
    assert ("page", "tag", None, "cyber") in trail
    assert ("page", "tag", "energy", None) in trail
    assert any(s == "page" and f == "pause" and b is None and a for s, f, b, a in trail)
    # paused: in no segment, though still active
    segments = Segments.load(site.root)
    with site.engine.connect() as conn:
        assert sub.status == "active"
        assert segments.count(conn, "everyone") == 0
    # resume
    page = client.get(path)
    assert "paused until" in page.text
    client.post(path, data={"csrf": csrf_of(page.text), "action": "save", "topics": ["cyber"],
                            "pause": "0"})
    assert state(site, "reader@example.com").paused_until is None
    with site.engine.connect() as conn:
        assert segments.count(conn, "everyone") == 1


def test_a_get_only_crawl_changes_nothing(site: Site, client) -> None:
    subscribe(site, "reader@example.com", "energy")
    before = state(site, "reader@example.com")
    path = path_of(site, "reader@example.com")
    for url in (path, path + "?stop=energy", path + "?stop=cyber", path + "?action=unsubscribe",
                path + "?action=save&topics=cyber&pause=12", path + "?action=stop&topic=energy"):
        assert client.get(url).status_code == 200
    assert state(site, "reader@example.com") == before
    with site.engine.connect() as conn:
        assert conn.execute(select(subscriber_history.c.field).where(
            subscriber_history.c.source == "page")).all() == []


def test_stop_one_topic_is_confirmed_by_post(site: Site, client) -> None:
    subscribe(site, "reader@example.com", "energy", "cyber")
    path = path_of(site, "reader@example.com")
    page = client.get(path + "?stop=energy")
    assert "Stop receiving Energy?" in page.text
    assert set(state(site, "reader@example.com").tags) == {"energy", "cyber"}
    client.post(path, data={"csrf": csrf_of(page.text), "action": "stop", "topic": "energy"})
    assert set(state(site, "reader@example.com").tags) == {"cyber"}


def test_missing_foreign_or_stale_csrf_changes_nothing(site: Site, client) -> None:
    subscribe(site, "reader@example.com", "energy")
    subscribe(site, "other@example.com", "energy")
    path = path_of(site, "reader@example.com")
    foreign = csrf_of(client.get(path_of(site, "other@example.com")).text)
    stale = make_token(SECRET, "preferences-form", "reader@example.com", ttl=-10)
    for csrf in ("", foreign, stale, make_token("other-secret", "preferences-form",
                                                "reader@example.com")):
        response = client.post(path, data={"csrf": csrf, "action": "unsubscribe"})
        assert response.status_code == 403
        assert "nothing was saved" in response.text
    assert state(site, "reader@example.com").status == "active"


def test_tampered_and_foreign_tokens_are_refused(site: Site, client) -> None:
    subscribe(site, "reader@example.com", "energy")
    subscribe(site, "victim@example.com", "energy")
    good = path_of(site, "reader@example.com").rsplit("/", 1)[1]
    version, payload, mac = good.split(".")
    victim_payload = make_token(SECRET, "preferences", "victim@example.com").split(".")[1]
    csrf = csrf_of(client.get(path_of(site, "reader@example.com")).text)
    for token in (f"{version}.{victim_payload}.{mac}", f"{version}.{payload}.{mac[:-2]}AA",
                  make_token("another-secret-of-32-characters-or-more", "preferences",
                             "victim@example.com"),
                  make_token(SECRET, "unsubscribe", "victim@example.com"),
                  make_token(SECRET, "confirm", "victim@example.com"), "garbage"):
        assert client.get(f"/preferences/{token}").status_code == 400
        response = client.post(f"/preferences/{token}", data={"csrf": csrf, "action": "export"})
        assert response.status_code == 400
        assert "victim" not in response.text
    assert state(site, "victim@example.com").tags == ("energy",)


def test_unsubscribe_from_everything_is_a_post(site: Site, client) -> None:
    subscribe(site, "reader@example.com", "energy")
    path = path_of(site, "reader@example.com")
    page = client.get(path)
    response = client.post(path, data={"csrf": csrf_of(page.text), "action": "unsubscribe"})
    assert "unsubscribed from everything" in response.text
    sub = state(site, "reader@example.com")
    assert sub.status == "unsubscribed"
    with site.engine.connect() as conn:
        assert ("page", "status", "active", "unsubscribed") in {
            (e.source, e.field, e.before, e.after) for e in history_of(conn, sub.id)}


def test_export_holds_only_that_subscriber(site: Site, client) -> None:
    subscribe(site, "reader@example.com", "energy")
    subscribe(site, "other@example.com", "energy", "cyber")
    send(site, "energy")
    path = path_of(site, "reader@example.com")
    page = client.get(path)
    response = client.post(path, data={"csrf": csrf_of(page.text), "action": "export"})
    assert response.headers["content-disposition"].startswith("attachment")
    data = json.loads(response.text)
    assert data["profile"]["email"] == "reader@example.com"
    assert data["tags"] == ["energy"]
    assert [s["issue"] for s in data["sends"]] == [SLUG]
    assert data["sends"][0]["state"] == "accepted"
    assert {h["field"] for h in data["history"]} == {"status", "tag"}
    assert "other@example.com" not in response.text


@pytest.mark.parametrize("language", [None])
def test_edition_language_is_offered_only_when_there_are_several(site: Site,
                                                                 language: None) -> None:
    from tests.web.public.conftest import make_client

    subscribe(site, "reader@example.com")
    path = path_of(site, "reader@example.com")
    second = site.root / "issues" / "2026-11-24-ar"
    shutil.rmtree(second)  # the sample's Arabic edition: one language left
    with make_client(site) as client:
        assert "Edition language" not in client.get(path).text
    second.mkdir()
    (second / "issue.yaml").write_text("subject: x\nlanguage: ar\n", encoding="utf-8")

    with make_client(site) as again:
        page = again.get(path)
        assert "Edition language" in page.text
        again.post(path, data={"csrf": csrf_of(page.text), "action": "save", "language": "ar",
                               "pause": "0"})
    assert state(site, "reader@example.com").attributes["language"] == "ar"
