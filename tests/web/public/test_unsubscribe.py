"""Unsubscribe links: confirmation page, RFC 8058 one-click POST, forged tokens, no leaks."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urljoin

from newsletter.core.tokens import make_token
from tests.web.public.conftest import SECRET, Site, confirm_link

ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def test_route_matches_the_url_dispatch_puts_in_every_email(site: Site, client) -> None:
    site.add("reader@example.com")
    path = site.unsubscribe_path("reader@example.com")
    assert path.startswith("/unsubscribe/")
    page = client.get(path)
    assert page.status_code == 200
    assert "reader@example.com" in page.text
    # one button, posting the RFC 8058 field back to the same URL
    assert page.text.count("<button") == 1
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert site.status("reader@example.com") == "active"  # a GET changes nothing


def test_one_click_post_unsubscribes_at_once_without_redirect(site: Site, client) -> None:
    site.add("reader@example.com")
    response = client.post(site.unsubscribe_path("reader@example.com"), **ONE_CLICK)
    assert response.status_code == 200
    assert "location" not in response.headers
    assert site.status("reader@example.com") == "unsubscribed"
    assert "/resubscribe/" in response.text  # the resubscribe button


def test_repeating_an_unsubscribe_is_harmless(site: Site, client) -> None:
    site.add("reader@example.com")
    path = site.unsubscribe_path("reader@example.com")
    first = client.post(path, **ONE_CLICK)
    changed = site.statuses()["reader@example.com"][1]
    second = client.post(path, **ONE_CLICK)
    assert first.status_code == second.status_code == 200
    assert site.statuses()["reader@example.com"] == ("unsubscribed", changed)


def test_forged_or_altered_tokens_get_400_and_change_nothing(site: Site, client) -> None:
    site.add("reader@example.com")
    site.add("victim@example.com")
    good = site.unsubscribe_path("reader@example.com").rsplit("/", 1)[1]
    version, payload, mac = good.split(".")
    forged_payload = make_token(SECRET, "unsubscribe", "victim@example.com").split(".")[1]
    bad_tokens = [
        make_token("another-secret-of-at-least-32-characters", "unsubscribe",
                   "victim@example.com"),  # wrong key
        f"{version}.{forged_payload}.{mac}",  # someone else's address with this MAC
        f"{version}.{payload}.{mac[:-2]}AA",  # altered MAC
        f"{payload}.{mac}",  # without its version: read as the first format, fails
        make_token(SECRET, "confirm", "victim@example.com"),  # a token for something else
        "garbage", "a.b.c",
    ]
    before = site.statuses()
    for token in bad_tokens:
        assert client.get(f"/unsubscribe/{token}").status_code == 400, token
        assert client.post(f"/unsubscribe/{token}", **ONE_CLICK).status_code == 400, token
        assert client.post(f"/resubscribe/{token}").status_code == 400, token
    assert site.statuses() == before
    assert not site.outbox.exists()


def test_answers_do_not_reveal_whether_an_address_is_subscribed(site: Site, client) -> None:
    site.add("known@example.com")
    pages = {}
    for address in ("known@example.com", "stranger@example.com"):
        path = site.unsubscribe_path(address)
        token = path.rsplit("/", 1)[1]
        get, post = client.get(path), client.post(path, **ONE_CLICK)
        pages[address] = [(r.status_code, r.text.replace(address, "X").replace(token, "T"))
                          for r in (get, post)]
    assert pages["known@example.com"] == pages["stranger@example.com"]
    assert site.status("stranger@example.com") is None  # nobody was created


def test_unsubscribing_keeps_a_bounce_or_complaint(site: Site, client) -> None:
    site.add("bounced@example.com", "bounced")
    site.add("complained@example.com", "complained")
    for address in ("bounced@example.com", "complained@example.com"):
        assert client.post(site.unsubscribe_path(address), **ONE_CLICK).status_code == 200
    assert site.status("bounced@example.com") == "bounced"
    assert site.status("complained@example.com") == "complained"


def test_resubscribe_needs_the_emailed_confirmation(site: Site, client) -> None:
    site.add("reader@example.com", name="Rita Reader")
    path = site.unsubscribe_path("reader@example.com")
    done = client.post(path, **ONE_CLICK)
    action = re.search(r'action="([^"]+)"', done.text).group(1)
    answer = client.post(urljoin(path, action))
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert site.status("reader@example.com") == "unsubscribed"  # not yet
    [message] = site.messages()
    assert message["To"] == "reader@example.com"
    link = confirm_link(message)
    confirmed = client.post("/" + link.split("/", 3)[3])
    assert confirmed.status_code == 200
    assert site.status("reader@example.com") == "active"
    assert site.statuses()["reader@example.com"][1] > dt.datetime.now(dt.UTC) - dt.timedelta(
        minutes=1)
