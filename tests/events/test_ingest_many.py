"""A webhook batch of more people than one SQLite IN list holds (900) is judged, stored and
counted per person exactly as a plain reference says, on SQLite and PostgreSQL.

Each of PEOPLE people of an outbox send clicks once. Their message's delivery time is their
own ledger row's acceptance time (distinct per person; their row of an earlier send, accepted
at another time, must not count), or, for every third person, a `delivered` event stored by an
earlier batch, which wins. A click within `scanner_delay_s` after that time is a machine's
(too-soon), any other a person's. So each verdict needs the right person's row of the right
send, read back in the right time zone, whichever chunk (SQLite) or array (PostgreSQL) the
person fell in. Then the counters, `last_engaged_at`, and a replay of the whole batch.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from newsletter.db import open_database
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import engagement, subscribers, webhook_events
from newsletter.events.apply import LARGE_BATCH, apply_batch
from newsletter.events.classify import Thresholds
from newsletter.providers.events import Kind, ProviderEvent

PEOPLE = 1_000
T0 = int((dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).timestamp())
PERSON = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1"
OLD, NEW = 1, 2  # the send ids


def email(n: int) -> str:
    return f"Reader{n:04d}@Example.org"  # stored under its lower-case key


def at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def accepted(n: int) -> int:
    """When the ledger says the new send's message to person n was accepted."""
    return T0 + 7 * n


def delivered_event(n: int) -> int | None:
    """When a stored `delivered` event says person n's message arrived (every third)."""
    return T0 + 7 * n + 500 if n % 3 == 0 else None


def clicked(n: int) -> int:
    """Person n's click: 5 s after a delivery time (even n: the ledger's; odd: the event's)."""
    return accepted(n) + 5 if n % 2 == 0 else accepted(n) + 505


def world(engine: Engine) -> None:
    """PEOPLE subscribers, two outbox sends with a ledger row each per person."""
    made = at(T0 - 86_400)
    with engine.begin() as conn:
        conn.execute(insert(subscribers), [
            {"id": n + 1, "email": email(n), "email_key": email(n).lower(), "name": "R",
             "status": "active", "attributes": {}, "source": "test", "created_at": made,
             "updated_at": made, "status_changed_at": made} for n in range(PEOPLE)])
        for send_id, issue in ((OLD, "2026-11-24"), (NEW, "2026-12-01")):
            conn.execute(insert(sends).values(
                id=send_id, issue=issue, segment="everyone", transport="outbox",
                content_hash="0" * 64, subject="S", state="completed", total=PEOPLE,
                accepted=PEOPLE, failed=0, unknown=0, batches=1, created_at=made,
                updated_at=made))
        # the earlier send's row of each person was accepted 3 s before their click
        conn.execute(insert(send_recipients), [
            {"send_id": send_id, "subscriber_id": n + 1, "email": email(n), "name": "R",
             "attributes": {}, "state": "accepted", "batch": 1, "attempts": 1,
             "updated_at": at(accepted(n) if send_id == NEW else clicked(n) - 3)}
            for send_id in (OLD, NEW) for n in range(PEOPLE)])


def event(kind: Kind, n: int, seconds: int) -> ProviderEvent:
    return ProviderEvent("sendgrid", f"{kind}-{n}", kind, email(n), timestamp=seconds,
                         send_id=NEW, url="https://example.org/a" if kind == Kind.CLICKED else None,
                         user_agent=PERSON if kind == Kind.CLICKED else None)


def test_a_batch_of_many_people_is_judged_and_counted_per_person(migrated_db_url: str) -> None:
    engine = open_database(migrated_db_url)
    try:
        world(engine)
        deliveries = [event(Kind.DELIVERED, n, when) for n in range(PEOPLE)
                      if (when := delivered_event(n)) is not None]
        assert apply_batch(engine, deliveries).applied == len(deliveries)
        clicks = [event(Kind.CLICKED, n, clicked(n)) for n in range(PEOPLE)]
        report = apply_batch(engine, clicks, limits=Thresholds(scanner_delay_s=10))
        assert (report.applied, report.duplicates) == (PEOPLE, 0)

        expected = {}
        for n in range(PEOPLE):
            since = clicked(n) - (delivered_event(n) or accepted(n))
            expected[email(n).lower()] = "too-soon" if 0 <= since <= 10 else None
        assert set(expected.values()) == {"too-soon", None}
        e = webhook_events.c
        with engine.connect() as conn:
            found = dict(conn.execute(select(e.email_key, e.reason)
                                      .where(e.event == "click")).all())
            counts = dict(conn.execute(select(engagement.c.email_key, engagement.c.clicks)
                                       .where(engagement.c.send_id == NEW)).all())
            engaged = dict(conn.execute(select(subscribers.c.email_key,
                                               subscribers.c.last_engaged_at)).all())
        assert found == expected
        assert counts == {email(n).lower(): 1 for n in range(PEOPLE)}
        assert engaged == {email(n).lower(): None if expected[email(n).lower()] else
                           at(clicked(n)) for n in range(PEOPLE)}

        again = apply_batch(engine, clicks, limits=Thresholds(scanner_delay_s=10))
        assert (again.applied, again.duplicates) == (0, PEOPLE)
        with engine.connect() as conn:
            assert dict(conn.execute(select(engagement.c.email_key, engagement.c.clicks)
                                     .where(engagement.c.send_id == NEW)).all()) == counts
    finally:
        engine.dispose()


def test_a_large_batch_on_sqlite_is_checkpointed_once_the_lock_is_free(tmp_path: Path,
                                                                        sqlite_template: Path
                                                                        ) -> None:
    """A large batch commits without SQLite's automatic checkpoint (which would run while this
    process's other writers wait) and is checkpointed right after: once apply_batch returns,
    the database file itself (read without its write-ahead log) holds the batch. The
    connection's own `wal_autocheckpoint` is what it was, and a small batch (a redirect's
    click) still leaves checkpoints to SQLite."""
    path = tmp_path / "n.db"
    shutil.copyfile(sqlite_template, path)
    engine = open_database(f"sqlite:///{path}")
    try:
        world(engine)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            setting = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]

        def in_the_file() -> int:
            """Events in the database file alone (a copy without its WAL)."""
            copy = tmp_path / "file-only.db"
            shutil.copyfile(path, copy)
            with sqlite3.connect(copy) as alone:
                return alone.execute("SELECT count(*) FROM webhook_events").fetchone()[0]

        small = [event(Kind.DELIVERED, n, accepted(n) + 1) for n in range(LARGE_BATCH - 1)]
        assert apply_batch(engine, small).applied == len(small)
        assert in_the_file() == 0  # fewer pages than wal_autocheckpoint: still in the WAL
        large = [event(Kind.CLICKED, n, clicked(n)) for n in range(LARGE_BATCH)]
        assert apply_batch(engine, large).applied == len(large)
        assert in_the_file() == len(small) + len(large)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == setting > 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_look_ups_are_planned_for_their_values_not_by_a_stale_generic_plan(
        postgres_url: str) -> None:
    """psycopg prepares a query text after its fifth run, and PostgreSQL may then keep one
    generic plan for it. Made while webhook_events was empty (statistics taken then), that
    plan reads the whole table for every later click. The ingest's transactions plan each
    statement for its values: many clicks, one at a time (as redirects come), on one
    connection, leave no generic plan among the prepared statements."""
    engine = open_database(postgres_url)
    try:
        world(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE webhook_events")  # statistics of an empty table
        for n in range(12):
            apply_batch(engine, [event(Kind.CLICKED, n, clicked(n))])
        with engine.connect() as conn:
            prepared = conn.exec_driver_sql(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE %s", ("%webhook_events%",)).all()
        assert any(custom >= 6 for _, _, custom in prepared), prepared  # prepared, and used
        assert [(s, g) for s, g, _ in prepared if g] == []
    finally:
        engine.dispose()
