"""Engine creation for SQLite (embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from newsletter.core.errors import InputError, Problem

SQLITE_BUSY_TIMEOUT_S = 30


def _url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(
            Problem("NEWSLETTER_DATABASE_URL", None, f"cannot read database URL: {exc}")
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InputError(
            Problem("NEWSLETTER_DATABASE_URL", None,
                    f"unsupported database '{parsed.drivername}'; use sqlite:/// or postgresql://")
        )
    return parsed


def display_url(url: str | URL) -> str:
    """The URL with any password hidden, for messages."""
    return _url(url).render_as_string(hide_password=True)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when transactions begin (see the `begin` hook).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # `write_connection` (sqlite_immediate=True) takes the write lock up front.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writer_lock(engine: Engine) -> contextlib.AbstractContextManager[object]:
    """On SQLite, a lock that lines up this process's writers for the database's one write
    lock. SQLite's busy handler makes a waiting writer sleep (in steps of up to 100 ms) and
    poll, so threads writing at once (a send's workers, webhook batches in `serve`) left the
    database idle between transactions; a thread waiting here starts the moment the one before
    it commits. Other processes still wait on SQLite's busy timeout. PostgreSQL: no lock."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _WRITERS_LOCK:
        lock = _WRITERS.get(engine)
        if lock is None:
            lock = _WRITERS[engine] = threading.RLock()
    return lock


@contextlib.contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection whose transactions take SQLite's write lock up front (BEGIN IMMEDIATE),
    held by one thread of this process at a time (see `_writer_lock`)."""
    with _writer_lock(engine), engine.connect().execution_options(sqlite_immediate=True) as conn:
        yield conn


def connect(url: str | URL) -> Engine:
    """An Engine for `url`: SQLite gets WAL, foreign keys and its parent folder created."""
    parsed = _url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(parsed, pool_pre_ping=True)
