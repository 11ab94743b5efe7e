"""`serve` under a `public_url` with a path (https://example.org/monitor/): every link it mails and
every link and form on its pages works under the prefix, whether the proxy passes the prefix
on or strips it."""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.core.tokens import link_token, preferences_url
from tests.web.public.conftest import SECRET, Site, confirm_link, event, make_client, signed

BASE = "https://example.org"
PUBLIC = f"{BASE}/monitor/"


@pytest.fixture()
def prefixed(site: Site, tmp_path) -> Site:
    config = site.root / "newsletter.yaml"
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^public_url: .*$", f"public_url: {PUBLIC}", text)
    text = re.sub(r"(?m)^archive_url: .*$", f"archive_url: {PUBLIC}archive/", text)
    config.write_text(text + "tracking: {clicks: true}\n", encoding="utf-8")
    archive = tmp_path / "published"
    (archive / "2026-11-24").mkdir(parents=True)
    (archive / "index.html").write_text("<!doctype html><title>Archive</title>")
    (archive / "2026-11-24" / "index.html").write_text("<!doctype html><title>Issue</title>")
    return site


def _links(page_url: str, html: str) -> list[tuple[str, str]]:
    """(method, absolute URL) of every link and form on a page."""
    doc = lxml.html.fromstring(html)
    found = [("GET", urljoin(page_url, href)) for href in doc.xpath("//a/@href")]
    found += [(form.get("method", "get").upper(), urljoin(page_url, form.get("action") or ""))
              for form in doc.xpath("//form")]
    return found


def _walk(client, url: str, method: str = "GET", data: dict | None = None,
          seen: set | None = None) -> None:
    """Follow every link and form of the page at `url` (posting its own CSRF token and the
    form's fields), checking each stays under the prefix and is answered."""
    seen = set() if seen is None else seen
    if (method, url) in seen or not url.startswith(BASE):
        return
    seen.add((method, url))
    assert urlsplit(url).path.startswith("/monitor/"), url
    answer = client.request(method, url, data=data)
    assert answer.status_code in (200, 301, 302), (method, url, answer.status_code)
    if answer.status_code in (301, 302):
        _walk(client, urljoin(url, answer.headers["location"]), "GET", seen=seen)
        return
    if "html" not in answer.headers.get("content-type", ""):
        return
    doc = lxml.html.fromstring(answer.text)
    for form in doc.xpath("//form"):
        fields = {i.get("name"): i.get("value") or "" for i in form.xpath(".//input")
                  if i.get("name") and i.get("type") not in ("checkbox", "radio")}
        fields.pop("website", None)  # the honeypot stays empty
        if "email" in fields:
            fields["email"] = "walker@example.org"
        for button in form.xpath(".//button[@name]"):
            if button.get("value") not in ("unsubscribe",):
                _walk(client, urljoin(url, form.get("action") or ""), "POST",
                      {**fields, button.get("name"): button.get("value")}, seen)
        if not form.xpath(".//button[@name]"):
            _walk(client, urljoin(url, form.get("action") or ""), "POST", fields, seen)
    for method_, link in _links(url, answer.text):
        if method_ == "GET":
            _walk(client, link, seen=seen)


@pytest.mark.slow
def test_every_link_serve_mails_and_shows_works_under_the_prefix(prefixed: Site,
                                                                  tmp_path) -> None:
    site = prefixed
    site.add("reader@example.com")
    result = CliRunner().invoke(main, ["-C", str(site.root), "send", "2026-11-24", "--segment",
                                       "everyone", "--yes"], env=site.env)
    assert result.exit_code == 0, result.output
    [message] = site.messages()
    unsubscribe = message["List-Unsubscribe"].strip("<>").split(">")[0]
    assert unsubscribe.startswith(f"{PUBLIC}unsubscribe/")
    preferences = preferences_url(PUBLIC, SECRET, "reader@example.com")
    click = f"{PUBLIC}c/{link_token(SECRET, 1, 1, 'reader@example.com')}"
    with make_client(site, archive=tmp_path / "published") as client:
        client.base_url = BASE
        seen: set = set()
        for url in (PUBLIC, f"{PUBLIC}subscribe", preferences, f"{PUBLIC}archive/2026-11-24/",
                    f"{PUBLIC}healthz"):
            _walk(client, url, seen=seen)
        assert client.get(f"{BASE}/monitor").headers["location"] == "/monitor/"
        assert client.get(f"{PUBLIC}archive").headers["location"] == "/monitor/archive/"
        assert client.get(f"{PUBLIC}archive/2026-11-24").headers["location"] == \
            "/monitor/archive/2026-11-24/"
        assert client.get(click).status_code == 302
        # the confirmation link the walk's sign-up mailed, then the one-click unsubscribe
        link = confirm_link(site.messages()[-1])
        assert link.startswith(f"{PUBLIC}confirm/")
        _walk(client, link, seen=seen)
        assert site.status("walker@example.org") == "active"
        assert client.post(unsubscribe, content=b"List-Unsubscribe=One-Click").status_code == 200
        assert site.status("reader@example.com") == "unsubscribed"
        _walk(client, unsubscribe, seen=seen)  # the page, and its resubscribe form
        body = json.dumps([event("open", "reader@example.com", "p-1", send=1)]).encode()
        hook = client.post(f"{PUBLIC}webhooks/sendgrid", content=body,
                           headers=signed(site.key, body))
        assert hook.status_code == 200 and hook.json()["applied"] == 1
    paths = {urlsplit(u).path.split("/")[2] for _, u in seen}
    assert {"subscribe", "confirm", "unsubscribe", "resubscribe", "preferences",
            "archive"} <= paths


def test_a_proxy_that_strips_the_prefix_is_served_too(prefixed: Site, tmp_path) -> None:
    site = prefixed
    site.add("reader@example.com")
    token = preferences_url(PUBLIC, SECRET, "reader@example.com").rsplit("/", 1)[1]
    with make_client(site, archive=tmp_path / "published") as client:
        for path in ("/", "/subscribe", f"/preferences/{token}", "/archive/", "/healthz"):
            assert client.get(path).status_code == 200, path
        page = client.get("/subscribe").text
        assert all(urlsplit(u).path.startswith("/monitor/")
                   for _, u in _links(f"{PUBLIC}subscribe", page))
