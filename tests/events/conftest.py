"""Bounce mailbox fixtures: a publication with `bounces:` pointed at the test Dovecot, a
database (SQLite and PostgreSQL) holding the samples' subscribers and send 7's ledger rows."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, insert, select

from newsletter.cli import main
from newsletter.db import open_database
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import engagement, subscribers, webhook_events
from tests.mail_fixtures import BounceMailbox, bounce_mailbox, dovecot  # noqa: F401
from tests.providers.bounce_expectations import RETURN_PATH, ROWS, SECRET, SEND_ID

ROOT = Path(__file__).resolve().parents[2]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture()
def engine(migrated_db_url: str) -> Iterator[Engine]:
    """A database of this test's own at the latest schema."""
    engine = open_database(migrated_db_url)
    yield engine
    engine.dispose()


def add_subscribers(engine: Engine, emails: list[str]) -> None:
    at = now() - dt.timedelta(days=400)  # before every sample's date
    with engine.begin() as conn:
        conn.execute(insert(subscribers), [{
            "email": e, "email_key": e.lower(), "name": e.split("@")[0], "status": "active",
            "attributes": {}, "source": "test", "created_at": at, "updated_at": at,
            "status_changed_at": at} for e in emails])


def add_send(engine: Engine, send_id: int, rows: dict[int, str]) -> None:
    """A completed send with ledger rows of the given ids (as the samples name them)."""
    with engine.begin() as conn:
        conn.execute(insert(sends).values(
            id=send_id, issue="2026-11-24", segment="everyone", transport="smtp",
            content_hash="0" * 64, subject="S", state="completed", total=len(rows),
            accepted=len(rows), created_at=now(), updated_at=now()))
        conn.execute(insert(send_recipients), [{
            "id": rid, "send_id": send_id, "email": email, "name": "", "attributes": {},
            "state": "accepted", "attempts": 1} for rid, email in rows.items()])


@dataclass
class MailPub:
    """A publication whose bounce mailbox is a test Dovecot user's INBOX."""

    root: Path
    env: dict[str, str]
    engine: Engine
    mailbox: BounceMailbox

    def fetch(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["-C", str(self.root), "bounces", "fetch", *args],
                                  env=self.env, catch_exceptions=False)

    def spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "newsletter", "-C", str(self.root),
                                 *args], env={**os.environ, **self.env}, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(subscribers.c.email, subscribers.c.status)).all())

    def events(self) -> list[tuple[str, str, str, int | None]]:
        """(key, event, email_key, send_id) of every stored event."""
        c = webhook_events.c
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                select(c.sg_event_id, c.event, c.email_key, c.send_id).order_by(c.sg_event_id))]

    def counters(self) -> dict[tuple[int, str], dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(engagement)).mappings().all()
        return {(r["send_id"], r["email_key"]): {k: v for k, v in r.items() if v and k not in (
            "send_id", "email_key", "last_event_at")} for r in rows}


def write_config(root: Path, mailbox: BounceMailbox, extra: str = "") -> None:
    config = root / "newsletter.yaml"
    config.write_text(config.read_text() + f"bounces:\n  imap_url: {mailbox.url}\n"
                      f"  return_path: {RETURN_PATH}\n{extra}")


@pytest.fixture()
def mail_pub(warm_publication: Path, migrated_db_url: str,
             bounce_mailbox: BounceMailbox,  # noqa: F811
             monkeypatch: pytest.MonkeyPatch) -> Iterator[MailPub]:
    db_url, publication = migrated_db_url, warm_publication
    write_config(publication, bounce_mailbox)
    env = {"NEWSLETTER_DATABASE_URL": db_url, "NEWSLETTER_SECRET": SECRET,
           "NEWSLETTER_BOUNCES_PASSWORD": bounce_mailbox.password, "PYTHONPATH": str(ROOT)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("NEWSLETTER_SECRET_PREVIOUS", raising=False)
    engine = open_database(db_url)
    add_subscribers(engine, list(ROWS.values()))
    add_send(engine, SEND_ID, ROWS)
    yield MailPub(publication, env, engine, bounce_mailbox)
    engine.dispose()
