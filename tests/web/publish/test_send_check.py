"""`send` checks that the issue is online first: published to a local folder, served by a real
`newsletter serve`, asked over HTTP by the real `newsletter send` command."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from newsletter.checks.published import IMAGE, PAGE, check_urls
from tests.web.publish.conftest import SLUG, Local

pytestmark = pytest.mark.slow  # each test runs several `newsletter` processes


def _import_subscribers(local: Local) -> None:
    result = local.run("subscribers", "import", "subscribers/sample.csv")
    assert result.returncode == 0, result.stderr


def _send(local: Local, *extra: str):
    return local.run("send", SLUG, "--segment", "everyone", "--transport", "outbox", "--yes",
                     *extra)


def _hero(local: Local) -> Path:
    """The published hero image (the build names it hero-<content hash>.jpg)."""
    [hero] = (local.published / SLUG).glob("hero-*.jpg")
    return hero.resolve()


def test_publish_then_send_verifies_every_url_against_serve(local: Local) -> None:
    _import_subscribers(local)
    published = local.run("publish", SLUG)
    assert published.returncode == 0, published.stderr
    assert (local.published / SLUG / "index.html").is_file() and _hero(local).is_file()
    local.serve()
    result = _send(local)
    assert result.returncode == 0, result.stderr
    assert "Online:" in result.stderr and "the web copy and 2 image URLs answer 200" in \
        result.stderr  # the hero and the energy piece's chart
    outbox = Path(local.env["NEWSLETTER_OUTBOX"])
    messages = list(outbox.rglob("*.eml"))
    assert messages
    message = email.message_from_bytes(messages[0].read_bytes(), policy=policy.default)
    body = message.get_body(("html",))
    assert f"{local.base}/archive/{SLUG}/{_hero(local).name}" in body.get_content()


def test_a_missing_image_makes_send_refuse_with_its_url(local: Local) -> None:
    _import_subscribers(local)
    assert local.run("publish", SLUG).returncode == 0
    hero = _hero(local)
    hero.unlink()
    local.serve()
    result = _send(local)
    assert result.returncode == 1
    assert f"{local.base}/archive/{SLUG}/{hero.name}: HTTP 404" in result.stderr
    assert f"newsletter publish {SLUG}" in result.stderr and "--skip-url-check" in result.stderr
    assert f"{local.base}/archive/{SLUG}/:" not in result.stderr  # the web copy is fine
    assert not list(Path(local.env["NEWSLETTER_OUTBOX"]).rglob("*.eml"))  # nothing sent
    assert "no sends of" in local.run("status", SLUG).stdout


def test_an_unpublished_issue_is_refused_and_skip_url_check_overrides(local: Local) -> None:
    _import_subscribers(local)
    local.serve()  # serving, but nothing published yet
    refused = _send(local)
    assert refused.returncode == 1
    assert f"{local.base}/archive/{SLUG}/: HTTP 404" in refused.stderr
    forced = _send(local, "--skip-url-check")
    assert forced.returncode == 0, forced.stderr
    assert "not checked (--skip-url-check)" in forced.stderr
    assert list(Path(local.env["NEWSLETTER_OUTBOX"]).rglob("*.eml"))


def test_an_unreachable_server_and_a_wrong_type_are_refused(
        local: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", local.env["SSL_CERT_FILE"])
    assert local.run("publish", SLUG).returncode == 0
    page, hero = f"{local.base}/archive/{SLUG}/", f"{local.base}/archive/{SLUG}/{_hero(local).name}"
    down = check_urls([(page, PAGE), (hero, IMAGE)], timeout=2)
    assert not down.ok and len(down.failures) == 2  # nothing listens behind the proxy yet
    local.serve()
    up = check_urls([(page, PAGE), (hero, IMAGE), (page, IMAGE), (hero, PAGE)], timeout=2)
    assert [a.ok for a in up.answers] == [True, True, False, False]
    assert up.answers[2].problem() == ("Content-Type text/html; charset=utf-8, expected an "
                                       "image type")
    assert "2 of 4 URLs of the issue do not answer" in up.line()


def test_dry_run_and_send_test_do_not_check(local: Local) -> None:
    _import_subscribers(local)
    dry = _send(local, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Online:" not in dry.stderr
    test = local.run("send-test", SLUG, "--transport", "outbox")
    assert test.returncode == 0, test.stderr
