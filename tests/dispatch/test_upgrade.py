"""Upgrading newsletter in the middle of a send: a send begun by the previous release (the
schema before the issue-family migration: no frozen artifact, a content hash of the old
renderer's bytes), killed, then resumed by this release, finishes with no duplicate and no
operator step. And the issue-family migration on a database with a history."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from newsletter.compose import build_issue
from newsletter.compose.pipeline import content_hash
from newsletter.compose.publication import Publication
from newsletter.core.personalise import Recipient
from newsletter.db import connect, upgrade
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.migrations import MIGRATIONS
from newsletter.providers.mailing import Mailing
from newsletter.providers.mime import MimeRenderer
from tests.dispatch.conftest import SECRET, SLUG, Pub, add_people, family_mail, pub_env

#: the last schema the previous release knew: the one before the issue-family migration
PREVIOUS_SCHEMA = next(m.version for m in MIGRATIONS
                       if m.description.startswith("issue family ledger")) - 1


@pytest.fixture()
def old_pub(warm_publication: Path, db_url: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Pub]:
    """A publication whose database the previous release made."""
    env = pub_env(db_url, tmp_path, monkeypatch)
    engine = connect(db_url)
    upgrade(engine, MIGRATIONS[:PREVIOUS_SCHEMA])
    yield Pub(warm_publication, db_url, env, engine)
    engine.dispose()


def _dead_owner() -> str:
    """The lease owner a killed process leaves behind."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}"


def _begin_as_the_previous_release(pub: Pub, states: list[str], files: set[int]) -> None:
    """What the previous release's `newsletter send` left when it was killed: a `sending`
    row held by a dead process, with the old renderer's content hash and no artifact; the
    snapshot, rows in `states`, and the outbox files of rows `files` (1-based)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    build = build_issue(Publication.load(pub.root), SLUG)
    old_hash = content_hash(build.subject, build.html + "<!-- the old renderer -->", build.text)
    with pub.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO sends (issue, segment, transport, content_hash, subject, state, total,"
            " accepted, failed, unknown, batches, owner, heartbeat_at, lease, leased_at,"
            " created_at, updated_at) VALUES (:issue, 'everyone', 'outbox', :hash, :subject,"
            " 'sending', 0, 0, 0, 0, 1, :owner, :now, 1, :now, :now, :now)"),
            {"issue": SLUG, "hash": old_hash, "subject": build.subject,
             "owner": _dead_owner(), "now": now})
        conn.execute(text(
            "INSERT INTO send_recipients (send_id, subscriber_id, email, name, attributes,"
            " state, attempts) SELECT 1, id, email, name, attributes, 'pending', 0"
            " FROM subscribers WHERE status = 'active' ORDER BY id"))
        for row, state in enumerate(states, start=1):
            conn.execute(text("UPDATE send_recipients SET state = :state, batch = 1,"
                              " attempts = 1 WHERE id = :id"), {"state": state, "id": row})
        conn.execute(text(
            "UPDATE sends SET total = :total, accepted = :accepted, unknown = :unknown"),
            {"total": len(states), "accepted": states.count("accepted"),
             "unknown": states.count("unknown")})
        rows = conn.execute(text("SELECT id, email, name FROM send_recipients ORDER BY id")).all()
    pubn = Publication.load(pub.root)
    mailing = Mailing(pubn.config, SLUG, build.subject, build.html, build.text, old_hash, "1",
                      SECRET)
    renderer = MimeRenderer(mailing)
    folder = pub.outbox / SLUG / "1"
    folder.mkdir(parents=True)
    for key, address, name in rows:
        if key in files:
            local = address.replace("@", "_")
            (folder / f"{key:08d}-{local}.eml").write_bytes(
                renderer.render(Recipient(address, name), mailing.message_id(key)))


def test_a_send_begun_by_the_previous_release_finishes_after_an_upgrade(old_pub: Pub) -> None:
    pub = old_pub
    people = add_people(pub.engine, 12)
    states = ["accepted"] * 5 + ["unknown", "unknown"] + ["pending"] * 5
    _begin_as_the_previous_release(pub, states, files={1, 2, 3, 4, 5, 6})
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    got = family_mail(pub)
    assert got == {p: ["en"] for p in people}  # row 6's file was there: not sent twice
    assert "was started by an earlier version of newsletter" in result.output
    assert "resume send #1" in result.output
    from newsletter.db.ledger_tables import send_artifacts

    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.state)).scalar_one() == "completed"
        assert conn.execute(select(func.count()).select_from(send_artifacts)).scalar_one() == 1
        assert set(conn.execute(select(send_recipients.c.state)).scalars()) == {"accepted"}


def test_the_migration_keeps_the_history_and_tells_cancelled_from_failed(old_pub: Pub) -> None:
    """Rows of batches cancelled at SendGrid (recorded `failed` before) become `cancelled`:
    they reached nobody, so a later send mails them; a real failure stays `failed`."""
    pub = old_pub
    people = add_people(pub.engine, 4)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with pub.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO sends (issue, segment, transport, content_hash, subject, state, total,"
            " accepted, failed, unknown, batches, lease, created_at, updated_at) VALUES"
            " (:issue, 'everyone', 'sendgrid', 'x', 's', 'cancelled', 4, 0, 4, 0, 1, 2, :now,"
            " :now)"), {"issue": SLUG, "now": now})
        for n, address in enumerate(people, start=1):
            why = ("cancelled with `newsletter send cancel` before delivery" if n < 4
                   else "RCPT TO: 550 no such user")
            conn.execute(text(
                "INSERT INTO send_recipients (send_id, subscriber_id, email, name, attributes,"
                " state, attempts, last_error) VALUES (1, :n, :email, '', '{}', 'failed', 1,"
                " :why)"), {"n": n, "email": address, "why": why})
    assert upgrade(pub.engine) == list(range(PREVIOUS_SCHEMA + 1, len(MIGRATIONS) + 1))
    with pub.engine.connect() as conn:
        row = conn.execute(select(sends.c.failed, sends.c.cancelled, sends.c.skipped,
                                  sends.c.reach)).one()
        states = conn.execute(select(send_recipients.c.state)
                              .order_by(send_recipients.c.id)).scalars().all()
    assert tuple(row) == (1, 3, 0, "once")
    assert states == ["cancelled"] * 3 + ["failed"]
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    assert family_mail(pub) == {p: ["en"] for p in people[:3]}
    assert "1 failed for good in an earlier send of the issue" in result.output
