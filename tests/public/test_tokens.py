"""Tokens that survive real life: any valid address, bound to a purpose, secrets that rotate,
short secrets refused, links of the first token format still honoured."""

from __future__ import annotations

import base64
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.errors import InputError
from newsletter.core.tokens import (
    BadToken,
    make_token,
    read_token,
    read_token_info,
    signing_secrets,
    unsubscribe_url,
)
from tests.public.conftest import SECRET, Site, confirm_link, make_client, post_form

OLD = "the-secret-before-rotation-0123456789"
NEW = "the-secret-after-the-rotation-abcdefgh"

# local parts made of every character RFC 5322 allows unquoted, `|` and `.` included
local_parts = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-.", min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(local=local_parts, purpose=st.sampled_from(["unsubscribe", "confirm", "csrf"]))
def test_any_address_round_trips_and_only_for_its_purpose(local: str, purpose: str) -> None:
    email = f"{local}@example.org"
    token = make_token(SECRET, purpose, email)
    assert read_token(SECRET, purpose, token) == email.lower()
    other = "confirm" if purpose != "confirm" else "unsubscribe"
    with pytest.raises(BadToken):
        read_token(SECRET, other, token)


def _legacy(secret: str, purpose: str, email: str) -> str:
    """A token of the first format, as mail sent before this version carries it."""
    payload = f"{purpose}|{email.lower()}|0".encode()
    mac = hmac.digest(secret.encode(), payload, "sha256")[:20]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(mac)}"


def test_first_format_tokens_still_work_even_with_a_pipe() -> None:
    assert read_token(SECRET, "unsubscribe", _legacy(SECRET, "unsubscribe", "a|b@example.org")) \
        == "a|b@example.org"
    with pytest.raises(BadToken):
        read_token(SECRET, "confirm", _legacy(SECRET, "unsubscribe", "a|b@example.org"))


def test_expiry_and_stamp() -> None:
    token = make_token(SECRET, "confirm", "x@example.org", ttl=60, stamped=True, now=1000.5)
    info = read_token_info(SECRET, "confirm", token, now=1059)
    assert (info.subject, info.issued_ms, info.expires) == ("x@example.org", 1000500, 1060)
    with pytest.raises(BadToken, match="expired"):
        read_token(SECRET, "confirm", token, now=1061)
    assert make_token(SECRET, "unsubscribe", "x@example.org") == \
        make_token(SECRET, "unsubscribe", "X@example.org")  # reproducible messages


def test_short_secrets_are_refused() -> None:
    assert signing_secrets(NEW, [OLD]) == [NEW, OLD]
    for current, previous in (("x" * 31, []), (NEW, ["short"]), (None, [])):
        with pytest.raises(InputError):
            signing_secrets(current, previous)


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


def test_every_token_is_read_through_the_one_verifier_and_csrf_has_one_home() -> None:
    """Only core/tokens.py reads tokens (its `Keys` always holds the rotation list), and only
    web/csrf.py makes or checks form tokens: no module can check with the current secret
    alone or invent a CSRF scheme of its own."""
    import ast
    from pathlib import Path

    import newsletter

    package = Path(newsletter.__file__).parent
    readers = {"read_token", "read_token_info", "read_link_token", "_parse", "_mac"}
    offenders = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                  for a in n.names}
        if rel != "core/tokens.py" and names & readers:
            offenders.append(f"{rel} reads tokens itself: {sorted(names & readers)}")
        # providers' webhooks check the provider's own signature or password, not our tokens
        theirs = ("providers/mailgun/webhook.py", "providers/postmark/webhook.py")
        if rel not in ("core/tokens.py", "audience/erasure.py", *theirs) and "hmac" in names:
            offenders.append(f"{rel} signs with hmac itself")
        if rel != "web/csrf.py" and {"CSRF_PURPOSE", "Sessions"} & names:
            offenders.append(f"{rel} has a CSRF scheme of its own")
    assert offenders == []
