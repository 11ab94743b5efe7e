"""Public-side fixtures: a publication on each database, a generated ECDSA key pair that signs
webhook payloads as SendGrid would, the app under Starlette's TestClient, and helpers."""

from __future__ import annotations

import datetime as dt
import email
import json
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, insert, select

from newsletter.compose.publication import Publication
from newsletter.core.tokens import unsubscribe_url
from newsletter.db import open_database
from newsletter.db.tables import subscribers
from newsletter.providers.sendgrid.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    public_key_text,
    sign,
)
from tests.fake_sendgrid import API_KEY, FakeSendGrid
from tests.fake_sendgrid_suppressions import Suppressions

SECRET = "public-test-secret-of-at-least-32-characters"
TOPICS = "topics: {cyber: Cyber and tech, energy: Energy}\n"


@pytest.fixture(scope="session")
def signing_key() -> ec.EllipticCurvePrivateKey:
    """SendGrid's side of the signed Event Webhook: a fresh P-256 key pair."""
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Site:
    """One publication with its database, environment and signing key."""

    root: Path
    env: dict[str, str]
    engine: Engine
    key: ec.EllipticCurvePrivateKey

    @property
    def pub(self) -> Publication:
        return Publication.load(self.root)

    @property
    def outbox(self) -> Path:
        return Path(self.env["NEWSLETTER_OUTBOX"])

    def add(self, email_addr: str, status: str = "active", name: str = "Reader",
            changed: dt.datetime | None = None, consented: dt.datetime | None = None) -> None:
        """A subscriber as an import makes it (no consent), or with `consented`, as a
        confirmed sign-up at that time does."""
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            conn.execute(insert(subscribers).values(
                email=email_addr, email_key=email_addr.lower(), name=name, status=status,
                attributes={}, source="test", created_at=now, updated_at=now,
                status_changed_at=changed or now, consented_at=consented))

    def status(self, email_addr: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(subscribers.c.status).where(
                subscribers.c.email_key == email_addr.lower())).scalar_one_or_none()

    def statuses(self) -> dict[str, tuple[str, dt.datetime]]:
        with self.engine.connect() as conn:
            return {r.email_key: (r.status, r.status_changed_at) for r in conn.execute(
                select(subscribers.c.email_key, subscribers.c.status,
                       subscribers.c.status_changed_at))}

    def unsubscribe_path(self, email_addr: str, secret: str = SECRET) -> str:
        url = unsubscribe_url(self.pub.config.public_url, secret, email_addr)
        return "/" + url.removeprefix(self.pub.config.public_url)

    def messages(self) -> list[email.message.Message]:
        return [email.message_from_bytes(p.read_bytes())
                for p in sorted(self.outbox.rglob("*.eml"))]


@pytest.fixture()
def site(warm_publication: Path, migrated_db_url: str, tmp_path: Path,
         signing_key: ec.EllipticCurvePrivateKey,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    publication = warm_publication  # the sample, its build caches filled
    with open(publication / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write(TOPICS)
    env = {
        "NEWSLETTER_DATABASE_URL": migrated_db_url,
        "NEWSLETTER_SECRET": SECRET,
        "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"),
        "NEWSLETTER_TRANSPORT": "outbox",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_text(signing_key),
        "NEWSLETTER_SKIP_URL_CHECK": "1",  # archive_url is fictional here; see tests/publish
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("SENDGRID_API_KEY", "SENDGRID_API_URL", "SMTP_URL"):
        monkeypatch.delenv(key, raising=False)
    engine = open_database(migrated_db_url)
    yield Site(publication, env, engine, signing_key)
    engine.dispose()


GROUP = 4242


@pytest.fixture()
def sendgrid(site: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSendGrid,
                                                                              Suppressions]]:
    config = site.root / "newsletter.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("sendgrid: {categories: [weekly]}",
                                   f"sendgrid: {{categories: [weekly], asm_group_id: {GROUP}}}"),
                      encoding="utf-8")
    lists = Suppressions(groups={GROUP: []})
    with FakeSendGrid() as fake:
        lists.install(fake)
        for key, value in {"SENDGRID_API_KEY": API_KEY, "SENDGRID_API_URL": fake.url}.items():
            site.env[key] = value
            monkeypatch.setenv(key, value)
        yield fake, lists


def make_client(site: Site, **kwargs: Any):
    """A TestClient for the public app of `site` (use as a context manager)."""
    from newsletter.web.public import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette: "install httpx2"
        from starlette.testclient import TestClient

    kwargs.setdefault("prune", False)  # test_hardening checks the pruning `serve` does
    kwargs.setdefault("sending", False)  # the welcome's own tests send it (tests/dispatch)
    return TestClient(create_app(site.pub, **kwargs), follow_redirects=False)


@pytest.fixture()
def client(site: Site):
    with make_client(site) as test_client:
        yield test_client


def signed(key: ec.EllipticCurvePrivateKey, body: bytes, *, at: int | None = None) -> dict:
    """SendGrid's signature headers for `body`."""
    stamp = str(int(time.time()) if at is None else at)
    return {SIGNATURE_HEADER: sign(key, stamp, body), TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json"}


def event(kind: str, email_addr: str, event_id: str, *, send: int | str | None = None,
          at: int | None = None, **extra: Any) -> dict:
    """One event as SendGrid posts it (custom_args appear as top-level keys)."""
    found = {"email": email_addr, "event": kind, "sg_event_id": event_id,
             "sg_message_id": f"msg-{event_id}.filter0001", "timestamp": at or int(time.time()),
             "smtp-id": f"<{event_id}@ismtpd>", "category": ["weekly"], **extra}
    if send is not None:
        found.update(nl_issue="2026-11-24", nl_send=str(send), nl_recipient="1")
    return found


def post_events(client, key: ec.EllipticCurvePrivateKey, events: list[dict] | bytes, **kw: Any):
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    return client.post("/webhooks/sendgrid", content=body, headers=signed(key, body, **kw))


def csrf_token(page_html: str) -> str:
    """The CSRF token in a page's subscribe form (parsed with lxml)."""
    import lxml.html

    [value] = lxml.html.fromstring(page_html).xpath('//input[@name="csrf"]/@value')
    return value


def post_form(client, data: dict, *, fetch_form: bool = True):
    """POST the subscribe form as a browser does: GET it first (cookie and token), then send."""
    page = client.get("/subscribe") if fetch_form else None
    fields = dict(data)
    if page is not None:
        fields.setdefault("csrf", csrf_token(page.text))
    return client.post("/subscribe", data=fields)


def confirm_link(message: email.message.Message) -> str:
    """The confirmation URL in a confirmation email's text part."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode()
            return re.search(r"https?://\S+/confirm/\S+", text).group(0)
    raise AssertionError("no text part")
