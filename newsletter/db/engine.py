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
#: SQLite: the size its write-ahead log file is cut back to each time the log starts over. A
#: burst (a large webhook batch, an import) can grow the file to hundreds of MB; without a
#: limit it keeps that size on disk until the last connection closes.
WAL_FILE_LIMIT = 64 * 2**20


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
    cursor.execute(f"PRAGMA journal_size_limit={WAL_FILE_LIMIT}")
    # Deleted and overwritten content is zeroed, not left in free space: an erased person's
    # address leaves the file (newsletter.audience.privacy; the WAL is checkpointed after).
    cursor.execute("PRAGMA secure_delete=ON")
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


@contextlib.contextmanager
def write_transaction(conn: Connection) -> Iterator[Connection]:
    """One write transaction on an open connection (one that holds TEMP tables, say), taking
    the locks `write_connection` takes for this transaction only: other transactions on the
    connection begin as plain (deferred) ones and do not hold SQLite's write lock."""
    with _writer_lock(conn.engine):
        conn.execution_options(sqlite_immediate=True)
        try:
            with conn.begin():
                yield conn
        finally:
            conn.execution_options(sqlite_immediate=False)


def purge_freed(engine: Engine, tables: list[str]) -> bool:
    """After deleting personal data: SQLite checkpoints its write-ahead log into the database
    file and truncates it (deleted content is already zeroed by secure_delete); PostgreSQL
    vacuums `tables` so no dead row version stays readable. Returns False when SQLite could not
    finish (another process is reading an older snapshot; its next checkpoint will)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside any transaction (the driver autocommits)
        try:
            busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.close()
        return not busy
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM " + ", ".join(tables))
    return True


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
