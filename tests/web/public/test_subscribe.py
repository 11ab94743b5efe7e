"""Sign-up with double opt-in: confirmation email, signed expiring link, honeypot, throttles."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.audience import get_subscriber
from newsletter.core.tokens import make_token
from newsletter.db import connect
from newsletter.db.tables import signups
from newsletter.events.optin import Limits
from tests.web.public.conftest import SECRET, Site, confirm_link, make_client, post_form


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def _signup_rows(site: Site) -> int:
    with site.engine.connect() as conn:
        return len(conn.execute(select(signups.c.email_key)).all())


def test_form_offers_the_configured_topics_and_a_hidden_honeypot(site: Site, client) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert 'name="email"' in page.text and 'name="name"' in page.text
    assert 'value="cyber"' in page.text and "Energy" in page.text
    assert 'class="hp"' in page.text and 'name="website"' in page.text


def test_double_opt_in_from_form_to_active_subscriber(site: Site, client) -> None:
    answer = post_form(client, {
        "email": "New.Reader@Example.com", "name": "  Nia   Reader ",
        "topics": ["cyber", "staff", "energy"], "website": ""})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    with site.engine.connect() as conn:
        assert get_subscriber(conn, "new.reader@example.com") is None  # not before confirming
    [message] = site.messages()
    assert message["To"] == "Nia Reader <New.Reader@example.com>"
    assert "Confirm your subscription" in message["Subject"]
    link = confirm_link(message)
    assert link.startswith(site.pub.config.public_url + "confirm/")
    page = client.get(_path(link))  # following the link shows a button (mail scanners GET)
    assert page.status_code == 200 and page.text.count("<button") == 1
    with site.engine.connect() as conn:
        assert get_subscriber(conn, "new.reader@example.com") is None
    assert client.post(_path(link)).status_code == 200
    with site.engine.connect() as conn:
        found = get_subscriber(conn, "new.reader@example.com")
    assert found is not None and found.status == "active"
    assert found.name == "Nia Reader" and found.source == "web"
    assert found.tags == ("cyber", "energy")  # "staff" is not an offered topic
    again = client.post(_path(link))  # a second click: "already confirmed", nothing changes
    assert again.status_code == 200 and "Already confirmed" in again.text


def test_honeypot_answers_as_if_ok_and_does_nothing(site: Site, client) -> None:
    answer = post_form(client, {"email": "bot@example.com", "website": "spam.biz"})
    human = post_form(client, {"email": "bot2@example.com", "website": ""})
    assert answer.status_code == human.status_code == 200
    assert answer.text.replace("bot@", "X@") == human.text.replace("bot2@", "X@")
    assert [m["To"] for m in site.messages()] == ["bot2@example.com"]
    assert _signup_rows(site) == 1


def test_invalid_address_is_a_form_error(site: Site, client) -> None:
    answer = post_form(client, {"email": "not-an-address"})
    assert answer.status_code == 400 and "valid email address" in answer.text
    assert _signup_rows(site) == 0 and not site.outbox.exists()


def test_per_address_throttle_sends_one_confirmation(site: Site, client) -> None:
    pages = [post_form(client, {"email": "flood@example.com"}) for _ in range(5)]
    assert {p.status_code for p in pages} == {200}
    assert len({p.text for p in pages}) == 1  # the same answer every time
    assert len(site.messages()) == 1


def test_per_address_daily_cap(site: Site) -> None:
    with make_client(site, limits=Limits(address_gap_s=0, address_per_day=2)) as client:
        for _ in range(4):
            assert post_form(client, {"email": "cap@example.com"}).status_code == 200
    assert len(site.messages()) == 2


def test_per_ip_throttle(site: Site) -> None:
    with make_client(site, limits=Limits(ip_requests=3)) as client:
        codes = [post_form(client, {"email": f"r{n}@example.com"}).status_code
                 for n in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert len(site.messages()) == 3


def test_answer_is_the_same_for_subscribed_and_unknown_addresses(site: Site, client) -> None:
    site.add("member@example.com")
    known = post_form(client, {"email": "member@example.com"})
    unknown = post_form(client, {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("member@", "X@") == unknown.text.replace("nobody@", "X@")


def test_unsubscribed_address_returns_only_through_confirmation(site: Site, client) -> None:
    site.add("back@example.com", "unsubscribed")
    post_form(client, {"email": "back@example.com", "topics": "energy"})
    assert site.status("back@example.com") == "unsubscribed"
    [message] = site.messages()
    client.post(_path(confirm_link(message)))
    assert site.status("back@example.com") == "active"


def test_expired_or_altered_confirmation_links_are_refused(site: Site, client) -> None:
    expired = make_token(SECRET, "confirm", "late@example.com", ttl=-60)
    altered = make_token(SECRET, "confirm", "late@example.com", ttl=3600)[:-3] + "AAA"
    wrong_kind = make_token(SECRET, "unsubscribe", "late@example.com")
    for token in (expired, altered, wrong_kind):
        assert client.get(f"/confirm/{token}").status_code == 400
        assert client.post(f"/confirm/{token}").status_code == 400
    assert site.status("late@example.com") is None


def test_healthz_checks_the_database(site: Site, client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "secret": "set",
                                             "webhook_key": "loaded"}
    unreachable = connect("postgresql://nobody@127.0.0.1:1/none")
    with make_client(site, engine=unreachable) as down:
        answer = down.get("/healthz")
    assert answer.status_code == 503 and answer.json()["database"] == "error"
