"""CSV import: check the whole file first, then apply it in short write transactions.

1. **Check.** The file is read as a stream (newsletter.audience.csvrows) into the import's
   staging tables (newsletter.audience.staging: COPY on PostgreSQL, executemany on SQLite),
   on the import's own connection: nothing anyone else sees is written, and on SQLite no write
   lock is held. Duplicates within the file and erased addresses are rejected there, and the
   rows that would change nothing are dropped (newsletter.audience.merge.prune_unchanged).
   A file that cannot be used, `--strict` with a bad row, or an interruption while checking
   leaves the database exactly as it was.
2. **Apply.** What is left goes in, set-based, a chunk of rows per write transaction, each
   sized to hold the write lock for about `WRITE_TARGET_S` (on SQLite, a pause after each lets
   a waiting writer, a running send, take its turn; on PostgreSQL, where no one waits for a
   write transaction but a writer to the same subscribers, `PG_WRITE_TARGET_S`, and new
   people go in with their tags and audit rows in one statement). An interruption here keeps
   the chunks already committed; running the same import again completes it: the rows already
   applied are unchanged now, so it writes only what is missing, and the subscribers end as
   one uninterrupted run would have left them. On PostgreSQL a chunk that meets an address
   someone added meanwhile (its insert fails on the unique key) is rolled back and applied
   again, merging that row into the person now known. A large import ends with ANALYZE of
   the subscriber tables, so that segments planned right after it see the new rows.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from newsletter.audience import merge, staging
from newsletter.audience.csvrows import Fatal, ImportReport, lines, rows
from newsletter.audience.model import normalize_tag, utcnow
from newsletter.core.errors import InputError, Problem
from newsletter.db.engine import write_transaction

__all__ = ["ImportReport", "import_csv"]

BATCH_SIZE = staging.LOAD_BATCH
#: SQLite: each write transaction of an import aims to hold the write lock this long, at most.
WRITE_TARGET_S = 0.4
#: PostgreSQL: each write transaction's aim. Nobody waits for it but a writer to one of the
#: very subscribers it changes (readers and the other writers go on: MVCC and row locks), and
#: each chunk pays for a pass over the subscribers, so its chunks are larger.
PG_WRITE_TARGET_S = 2.0
#: SQLite: the pause after each chunk. A writer waiting for the lock polls at least every
#: 100 ms (SQLite's busy handler), so a longer pause always lets it in.
SQLITE_PAUSE_S = 0.11
#: PostgreSQL: tries of a chunk that met an address added meanwhile (see `_apply_chunk`)
CHUNK_TRIES = 3
FIRST_CHUNK, MIN_CHUNK, MAX_CHUNK = 2000, 200, 100_000
#: PostgreSQL: an import that writes this many rows analyses the tables it wrote.
ANALYZE_AFTER = 10_000


def import_csv(
    engine: Engine,
    path: Path,
    *,
    tags: Iterable[str] = (),
    strict: bool = False,
    source: str | None = None,
    secret: str | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    chunk_rows: int | None = None,
) -> ImportReport:
    """Import subscribers from a CSV file and return the report.

    Raises InputError (nothing changed) when the file cannot be read as CSV, or, with
    `strict`, when any row is bad. `progress(bytes_read)` is called as the file is read.
    Addresses on the erasure list are rejected (checking it needs `secret` once it holds any).
    `chunk_rows` fixes the rows per write transaction (default: sized by time).
    """
    path = Path(path)
    report = ImportReport(path=path)
    try:
        extra = {normalize_tag(t) for t in tags}
    except ValueError as exc:
        raise InputError(Problem(path, None, f"--tag: {exc}")) from None
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InputError(Problem(path, None, f"cannot read file: {exc.strerror}")) from None
    with stream, engine.connect() as conn:
        try:
            with conn.begin():  # only the staging tables are written
                staging.create(conn)
                staging.load(conn, rows(lines(stream, progress), report, extra), batch_size)
                staging.reject_duplicates(conn, report)
                staging.reject_erased(conn, secret, report)
                report.unchanged += merge.prune_unchanged(conn)
            report.tidy()
            if strict and report.rejected:
                return report
            _apply(conn, report, source or f"import:{path.name}", secret, chunk_rows)
            if conn.dialect.name == "postgresql" and report.added + report.updated >= ANALYZE_AFTER:
                with conn.begin():  # segment plans right after a big import need statistics
                    conn.execute(text("ANALYZE subscribers, subscriber_tags"))
            report.tidy()
            report.committed = True
            return report
        except Fatal as exc:
            raise InputError(Problem(path, exc.row, exc.message)) from None
        finally:
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                staging.drop(conn)


def _apply(conn: Connection, report: ImportReport, source: str, secret: str | None,
           chunk_rows: int | None) -> None:
    """The staged rows, a chunk per write transaction, sized to the time each one takes."""
    sqlite = conn.dialect.name == "sqlite"
    target = WRITE_TARGET_S if sqlite else PG_WRITE_TARGET_S
    now = utcnow()
    size = chunk_rows or FIRST_CHUNK
    last = 0
    while True:
        with conn.begin():
            span = staging.next_range(conn, last, size)
        if span is None:
            return
        if report.chunks and sqlite:
            time.sleep(SQLITE_PAUSE_S)
        started = _apply_chunk(conn, span, report, now, source, secret, sqlite)
        held = time.perf_counter() - started
        report.chunks += 1
        report.longest_write_s = max(report.longest_write_s, held)
        last = span[1]
        if chunk_rows is None:
            wanted = size * target / max(held, 0.001)
            size = int(max(MIN_CHUNK, min(MAX_CHUNK, 2 * size, wanted)))


def _apply_chunk(conn: Connection, span: tuple[int, int], report: ImportReport,
                 now: dt.datetime, source: str, secret: str | None, sqlite: bool) -> float:
    """One chunk in one write transaction; returns when its work started (perf_counter).

    PostgreSQL: someone may add one of the chunk's addresses between its look-up and its
    insert (a sign-up, another import). The insert then fails on the unique key and the chunk
    is rolled back whole; it is applied again, against the subscribers as they are now, where
    that person is known, so their row is merged rather than added twice. The report's counts
    are those of the try that committed."""
    tries = 0
    while True:
        tries += 1
        before = copy.deepcopy(report)
        try:
            with write_transaction(conn):
                started = time.perf_counter()
                if not sqlite:  # as durable as SQLite's WAL commits: a re-run completes it
                    conn.execute(text("SET LOCAL synchronous_commit = off"))
                    staging.more_memory(conn)
                merge.apply_chunk(conn, span, report, now=now, source=source, secret=secret)
            return started
        except IntegrityError:
            vars(report).update(vars(before))  # the rolled-back try counted nothing
            if sqlite or tries == CHUNK_TRIES:
                raise
