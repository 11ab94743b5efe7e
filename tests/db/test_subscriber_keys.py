"""Every subscriber tag and audit row names an existing subscriber, and goes with them: by
foreign keys on SQLite, by statement triggers on PostgreSQL (newsletter.db.subscriber_keys),
including an erasure that runs while another transaction writes a tag or an audit row."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from newsletter.audience import add_subscriber
from newsletter.db import open_database
from newsletter.db.tables import subscriber_history, subscriber_tags, subscribers

NOW = dt.datetime(2026, 12, 6, 6, 0, tzinfo=dt.UTC)


@pytest.fixture()
def engine(migrated_db_url: str):
    engine = open_database(migrated_db_url)
    yield engine
    engine.dispose()


def person(engine: Engine, email: str, tags: tuple[str, ...] = ("energy", "press")) -> int:
    with engine.begin() as conn:
        add_subscriber(conn, email, tags=tags)
        return conn.execute(select(subscribers.c.id).where(
            subscribers.c.email == email)).scalar_one()


def audit_row(subscriber_id: int, after: str = "x") -> dict:
    return {"subscriber_id": subscriber_id, "at": NOW, "source": "cli", "field": "tag",
            "before": None, "after": after}


def orphans(engine: Engine) -> tuple[int, int]:
    """Tags and audit rows whose subscriber does not exist."""
    known = select(subscribers.c.id)
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(table).where(
            table.c.subscriber_id.not_in(known))).scalar_one()
            for table in (subscriber_tags, subscriber_history))


def rows_of(engine: Engine, subscriber_id: int) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(table).where(
            table.c.subscriber_id == subscriber_id)).scalar_one()
            for table in (subscriber_tags, subscriber_history))


def test_a_tag_or_audit_row_for_nobody_is_refused_whole(engine: Engine) -> None:
    known = person(engine, "known@example.org")
    before = rows_of(engine, known)
    for table, rows in ((subscriber_tags, [{"subscriber_id": known, "tag": "new"},
                                           {"subscriber_id": known + 1000, "tag": "new"}]),
                        (subscriber_history, [audit_row(known), audit_row(known + 1000)])):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(table), rows)
    assert rows_of(engine, known) == before  # the statement is refused whole
    with pytest.raises(IntegrityError), engine.begin() as conn:  # moved onto nobody
        conn.execute(update(subscriber_tags).where(subscriber_tags.c.subscriber_id == known)
                     .values(subscriber_id=known + 1000))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(subscriber_history).values(subscriber_id=known + 1000))
    assert rows_of(engine, known) == before


def test_deleting_subscribers_takes_their_tags_and_audit_rows_only(engine: Engine) -> None:
    gone = [person(engine, f"gone{n}@example.org") for n in range(3)]
    kept = person(engine, "kept@example.org")
    kept_rows = rows_of(engine, kept)
    assert kept_rows[0] == 2 and kept_rows[1] >= 3
    with engine.begin() as conn:
        conn.execute(delete(subscribers).where(subscribers.c.id.in_(gone)))
    assert all(rows_of(engine, g) == (0, 0) for g in gone)
    assert rows_of(engine, kept) == kept_rows
    assert orphans(engine) == (0, 0)


def erase_rows(conn: Connection, subscriber_id: int) -> None:
    """What an erasure does to a subscriber's rows (newsletter.audience.erasure.erase)."""
    for table in (subscriber_tags, subscriber_history):
        conn.execute(delete(table).where(table.c.subscriber_id == subscriber_id))
    conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))


def in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def wait_for_lock_wait(engine: Engine, deadline: float = 30.0) -> None:
    """Until a session of this database waits for a row lock (the other side's)."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    ends = time.monotonic() + deadline
    with engine.connect() as conn:
        while conn.execute(query).scalar_one() == 0:
            conn.rollback()
            assert time.monotonic() < ends, "the other transaction never waited for the lock"
            time.sleep(0.01)


# SQLite lets one writer in at a time: these two interleavings happen on PostgreSQL only
ON_POSTGRESQL = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@ON_POSTGRESQL
def test_postgresql_an_erasure_waits_for_a_tag_being_written_and_takes_it(
        engine: Engine) -> None:
    victim = person(engine, "victim@example.org", tags=())
    with engine.connect() as writer:
        writer.begin()
        writer.execute(insert(subscriber_tags).values(subscriber_id=victim, tag="late"))
        writer.execute(insert(subscriber_history).values(**audit_row(victim, "late")))

        def erase() -> None:
            with engine.begin() as conn:
                erase_rows(conn, victim)

        thread, errors = in_thread(erase)
        wait_for_lock_wait(engine)  # the erasure's delete of the subscriber waits for us
        writer.commit()
    thread.join(30)
    assert not thread.is_alive() and not errors
    assert rows_of(engine, victim) == (0, 0)
    assert orphans(engine) == (0, 0)


@ON_POSTGRESQL
def test_postgresql_a_tag_written_while_an_erasure_commits_is_refused(engine: Engine) -> None:
    victim = person(engine, "victim@example.org")
    with engine.connect() as eraser:
        eraser.begin()
        erase_rows(eraser, victim)

        def tag() -> None:
            with engine.begin() as conn:
                conn.execute(insert(subscriber_tags).values(subscriber_id=victim, tag="late"))

        thread, errors = in_thread(tag)
        wait_for_lock_wait(engine)  # the tag's check waits for the erasure
        eraser.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], IntegrityError)
    assert orphans(engine) == (0, 0)
