"""Secrets that rotate, on a real `serve`: links and forms made under the old secret work while
it is kept in NEWSLETTER_SECRET_PREVIOUS and stop once it is dropped; a short secret is
refused."""

from __future__ import annotations

import pytest

from newsletter.core.errors import InputError
from newsletter.core.tokens import read_token, unsubscribe_url
from tests.core.test_tokens import NEW, OLD, _legacy
from tests.web.public.conftest import Site, confirm_link, make_client, post_form


def test_serve_refuses_a_short_secret(site: Site, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "only-twenty-chars-xx")
    with pytest.raises(InputError, match="too short"):
        make_client(site)


def test_links_made_before_a_rotation_work_after_it(site: Site, monkeypatch) -> None:
    site.add("a|b@example.com")
    site.add("second@example.com")
    monkeypatch.setenv("NEWSLETTER_SECRET", OLD)
    public = site.pub.config.public_url
    old_unsub = unsubscribe_url(public, OLD, "a|b@example.com").removeprefix(public)
    old_legacy = "unsubscribe/" + _legacy(OLD, "unsubscribe", "second@example.com")
    with make_client(site) as client:  # before the rotation: a confirmation link is mailed
        post_form(client, {"email": "joiner@example.com"})
    [message] = site.messages()
    old_confirm = confirm_link(message).removeprefix(public)
    # the rotation: a new secret, the old one kept as previous
    monkeypatch.setenv("NEWSLETTER_SECRET", NEW)
    monkeypatch.setenv("NEWSLETTER_SECRET_PREVIOUS", f" {OLD} ,another-old-secret-0123456789xyz")
    with make_client(site) as client:
        assert client.post("/" + old_unsub).status_code == 200
        assert client.post("/" + old_legacy).status_code == 200
        assert "You are subscribed" in client.post("/" + old_confirm).text
        assert site.status("joiner@example.com") == "active"
        assert site.status("a|b@example.com") == site.status("second@example.com") \
            == "unsubscribed"
        # new links use the new secret
        assert read_token(NEW, "unsubscribe", site.unsubscribe_path(
            "x@example.com", secret=NEW).rsplit("/", 1)[1]) == "x@example.com"
    # once the old secret is dropped, its links stop working
    monkeypatch.delenv("NEWSLETTER_SECRET_PREVIOUS")
    site.add("third@example.com")
    with make_client(site) as client:
        stale = unsubscribe_url(public, OLD, "third@example.com").removeprefix(public)
        assert client.post("/" + stale).status_code == 400
    assert site.status("third@example.com") == "active"


def _preference_path(site: Site, secret: str, address: str) -> str:
    from newsletter.core.tokens import preferences_url

    public = site.pub.config.public_url
    return "/" + preferences_url(public, secret, address).removeprefix(public)


def _csrf(page_html: str) -> str:
    import lxml.html

    return lxml.html.fromstring(page_html).xpath('//input[@name="csrf"]/@value')[0]


def test_preference_links_made_before_a_rotation_work_after_it(site: Site, monkeypatch) -> None:
    site.add("reader@example.com")
    old_link = _preference_path(site, OLD, "reader@example.com")
    monkeypatch.setenv("NEWSLETTER_SECRET", NEW)
    monkeypatch.setenv("NEWSLETTER_SECRET_PREVIOUS", OLD)
    with make_client(site) as client:
        page = client.get(old_link)
        assert page.status_code == 200 and "reader@example.com" in page.text
        saved = client.post(old_link, data={"csrf": _csrf(page.text), "action": "save",
                                            "topics": "cyber", "pause": "keep"})
        assert saved.status_code == 200 and "Your choices are saved" in saved.text
    with site.engine.connect() as conn:
        from newsletter.audience import get_subscriber

        assert get_subscriber(conn, "reader@example.com").tags == ("cyber",)
    monkeypatch.delenv("NEWSLETTER_SECRET_PREVIOUS")  # the old secret dropped: link retired
    with make_client(site) as client:
        assert client.get(old_link).status_code == 400


def test_a_form_token_made_under_the_old_secret_passes_after_a_rotation(site: Site,
                                                                        monkeypatch) -> None:
    """One CSRF scheme, checked with the rotation list: a form loaded just before a restart
    with a new secret still posts."""
    monkeypatch.setenv("NEWSLETTER_SECRET", OLD)
    with make_client(site) as client:
        token = _csrf(client.get("/subscribe").text)
        cookie = client.cookies.get("nl_csrf")
    monkeypatch.setenv("NEWSLETTER_SECRET", NEW)
    monkeypatch.setenv("NEWSLETTER_SECRET_PREVIOUS", OLD)
    with make_client(site) as client:
        client.cookies.set("nl_csrf", cookie)
        assert client.post("/subscribe", data={"email": "a@example.com", "csrf": token}
                           ).status_code == 200
    monkeypatch.delenv("NEWSLETTER_SECRET_PREVIOUS")
    with make_client(site) as client:
        client.cookies.set("nl_csrf", cookie)
        assert client.post("/subscribe", data={"email": "b@example.com", "csrf": token}
                           ).status_code == 403
