"""What a ledger commit waits for, and what the database checks for each ledger row (issue 31).

A hand-over is committed durably (PostgreSQL waits for its WAL to reach the disk) before the
batch goes to the transport: a hand-over lost in a server crash would leave handed rows
`pending`, sent again on resume. Outcomes alone need not wait: lost, their rows stay
`unknown` (never `pending`), as after a crash of the sender. On PostgreSQL send_recipients has
no foreign key (a trigger run for each row of a snapshot); SQLite keeps it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, insert, inspect, true
from sqlalchemy.exc import IntegrityError

from newsletter.db import open_database
from newsletter.db.ledger_tables import send_recipients
from newsletter.dispatch.ledger import Ledger
from newsletter.dispatch.ledger.store import LedgerStore
from tests.dispatch.conftest import SLUG, add_people, artifact


def _setting(conn: Connection) -> str | None:
    if conn.dialect.name != "postgresql":
        return None
    return conn.exec_driver_sql("SHOW synchronous_commit").scalar_one()


def _durable_by_default(db_url: str) -> None:
    """PostgreSQL: the test databases commit without waiting (tests/db_fixtures.py); this one
    is set back to the server's default, as a real database is."""
    engine = open_database(db_url)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ALTER DATABASE " + conn.exec_driver_sql(
                "SELECT quote_ident(current_database())").scalar_one()
                + " SET synchronous_commit = on")
    engine.dispose()


def test_outcomes_alone_commit_without_waiting_and_hand_overs_wait(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _durable_by_default(db_url)
    engine = open_database(db_url)
    try:
        add_people(engine, 6)
        ledger = Ledger(engine)
        send = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                                   artifact=artifact(), members=true())
        settings: list[tuple[str, bool, str | None]] = []
        write = LedgerStore.write

        def spy(self: LedgerStore, work: Any, **kw: Any) -> Any:
            def seen(conn: Connection) -> Any:
                settings.append((work.__qualname__, kw.get("durable", True), _setting(conn)))
                return work(conn)
            return write(self, seen, **kw)

        monkeypatch.setattr(LedgerStore, "write", spy)
        (items,) = ledger.recipients.stream(send.id, ["pending"], 10)
        first, rest = items[:3], items[3:]
        over = ledger.recipients.hand_over(send.id, first, check=None, whole=True)
        ledger.recipients.record(send.id, [(i.key, "accepted", "m1", None) for i in first],
                                 over.batch)
        # a transport that reports each outcome: recording one commits the next in flight
        step = ledger.recipients.hand_over(send.id, rest, check=None, first_only=True)
        ledger.recipients.record(send.id, [(rest[0].key, "accepted", "m2", None)], step.batch,
                                 then=rest[1])
    finally:
        engine.dispose()
    pg = engine.dialect.name == "postgresql"
    durable, lazy = ("on", "off") if pg else (None, None)
    assert [(d, s) for _, d, s in settings] == [
        (True, durable), (False, lazy), (True, durable), (True, durable)], settings


def test_ledger_rows_are_tied_to_their_send_on_sqlite_only(db_url: str) -> None:
    """SQLite refuses a ledger row of no send; PostgreSQL has no such per-row trigger (the
    snapshot, in the transaction that creates the send, is the one writer of these rows)."""
    engine = open_database(db_url)
    try:
        with engine.connect() as conn:
            keys = inspect(conn).get_foreign_keys("send_recipients")
        row = {"send_id": 999_999, "subscriber_id": None, "email": "a@example.org",
               "name": "", "attributes": {}, "state": "pending", "attempts": 0}
        if engine.dialect.name == "sqlite":
            assert [k["referred_table"] for k in keys] == ["sends"]
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(insert(send_recipients).values(**row))
        else:
            assert keys == []
    finally:
        engine.dispose()
