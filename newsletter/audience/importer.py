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
   write transaction but a writer to the same subscribers, `PG_WRITE_TARGET_S`, and new people
   go in with their tags and audit rows in one statement). On PostgreSQL an import of
   PG_PARALLEL_FROM rows or more applies PG_APPLY_WORKERS chunks at once, each on a connection
   of its own with staging tables of its own, into which the chunk's rows are copied from the
   import's connection as it is handed out (`_apply_parallel`); no two chunks touch one person,
   and the ids of new people are taken at hand-out, in file order, so they follow the file
   although chunks commit out of order. An interruption here keeps the chunks already
   committed; running the same import again completes it: the rows already applied are
   unchanged now, so it writes only what is missing, and the subscribers end as one
   uninterrupted run would have left them. On PostgreSQL a chunk that meets an address someone
   added meanwhile (its insert fails on the unique key) is rolled back and applied again,
   merging that row into the person now known. A large import ends with ANALYZE of the
   subscriber tables, so that segments planned right after it see the new rows.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select, text
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
#: PostgreSQL: connections that apply an import's chunks at once (`_apply_parallel`).
PG_APPLY_WORKERS = 2
#: PostgreSQL: an import with fewer rows than this left to apply (about a second of work)
#: applies them on its own connection, one chunk after the other: below it a second
#: connection's copying costs more than it saves (docs/performance.md).
PG_PARALLEL_FROM = 20_000


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
            source = source or f"import:{path.name}"
            if conn.dialect.name == "postgresql" and (staged := _staged(conn)) >= PG_PARALLEL_FROM:
                _apply_parallel(engine, conn, report, source, secret, chunk_rows, staged)
            else:
                if conn.dialect.name == "postgresql":  # SQLite's were expanded to compare
                    with conn.begin():
                        staging.expand_tags(conn)
                _apply(conn, report, source, secret, chunk_rows)
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
        held = _counted(report, _apply_chunk(conn, span, report, now, source, secret, sqlite))
        last = span[1]
        if chunk_rows is None:
            size = _resized(size, held, target, size)


def _counted(report: ImportReport, started: float) -> float:
    """Count a chunk that committed now, its work begun at `started`; return how long it held."""
    held = time.perf_counter() - started
    report.chunks += 1
    report.longest_write_s = max(report.longest_write_s, held)
    return held


def _resized(size: int, held: float, target: float, current: int) -> int:
    """The next chunk's rows: as many as `target` s take at the pace of a chunk of `size` rows
    that took `held` s, at most twice the `current` size."""
    wanted = size * target / max(held, 0.001)
    return int(max(MIN_CHUNK, min(MAX_CHUNK, 2 * current, wanted)))


def _staged(conn: Connection) -> int:
    """The staged rows left to apply."""
    with conn.begin():
        return conn.execute(select(func.count()).select_from(staging.import_rows)).scalar_one()


class _HandOut:
    """PostgreSQL: an import's chunks, handed out in file order to the connections that apply
    them, each copied there from the import's own connection (`conn`, which holds the staging
    tables; one thread at a time uses it). The first failure stops it."""

    def __init__(self, conn: Connection, chunk_rows: int | None, staged: int) -> None:
        self.conn, self.chunk_rows, self.left = conn, chunk_rows, staged
        self.size, self.last = chunk_rows or FIRST_CHUNK, 0
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def next(self, worker: Connection) -> tuple[tuple[int, int], int] | None:
        """The next chunk's span and size, its rows copied into `worker`'s staging tables
        (inside its transaction; new people's ids taken now, so in file order), or None when
        every chunk is out or the import stops."""
        with self.lock:
            if self.error is not None:
                return None
            size = self.size
            if self.chunk_rows is None:  # the last rows shared out: the connections end together
                size = max(FIRST_CHUNK, min(size, -(-self.left // PG_APPLY_WORKERS)))
            with self.conn.begin():
                span = staging.next_range(self.conn, self.last, size)
                if span is None:
                    return None
                staging.copy_span(self.conn, worker, span)
            self.last, self.left = span[1], self.left - size
            return span, size

    def done(self, size: int, held: float) -> None:
        """A chunk of `size` rows committed after holding its locks `held` s."""
        with self.lock:
            if self.chunk_rows is None:
                self.size = _resized(size, held, PG_WRITE_TARGET_S, self.size)

    def stop(self, exc: BaseException) -> None:
        """No more chunks: `exc` (the first one given) is raised once those out have ended."""
        with self.lock:
            if self.error is None:
                self.error = exc


def _apply_parallel(engine: Engine, conn: Connection, report: ImportReport, source: str,
                    secret: str | None, chunk_rows: int | None, staged: int) -> None:
    """PostgreSQL: the staged rows a chunk per write transaction, PG_APPLY_WORKERS chunks at
    once, each on a connection of its own (no two chunks have a person in common: the file's
    duplicates were rejected). A failure, or Ctrl-C, stops the hand-out; the chunks in flight
    end (committed, or rolled back by their own failure) before it is raised here."""
    hand_out = _HandOut(conn, chunk_rows, staged)
    now = utcnow()
    parts = [ImportReport(path=report.path) for _ in range(PG_APPLY_WORKERS)]
    ended = [threading.Event() for _ in parts]
    for n, part in enumerate(parts):  # the import's connection is theirs until all have ended
        try:
            threading.Thread(target=_work, name=f"import-chunks-{n}",
                             args=(engine, hand_out, part, now, source, secret, ended[n])).start()
        except KeyboardInterrupt as exc:  # while start() waited for the thread: it runs
            hand_out.stop(exc)
        except Exception as exc:  # no thread to be had
            hand_out.stop(exc)
            ended[n].set()
    for end in ended:  # not Thread.join: a join that Ctrl-C interrupts can mark the thread
        while not end.is_set():  # ended while it runs on (CPython 3.11, bpo-45274's fix)
            try:
                end.wait()
            except KeyboardInterrupt as exc:
                hand_out.stop(exc)
    for part in parts:  # each thread counted its own (a retried chunk restores its copy)
        report.absorb(part)
    if hand_out.error is not None:
        raise hand_out.error


def _work(engine: Engine, hand_out: _HandOut, part: ImportReport, now: dt.datetime,
          source: str, secret: str | None, ended: threading.Event) -> None:
    """One applying connection, with staging tables of its own: chunk after chunk until none
    is left or the import stops. Leaves the connection without them, then sets `ended`."""
    try:
        with engine.connect() as conn:
            try:
                with conn.begin():
                    staging.create(conn)
                while True:
                    with conn.begin():
                        got = hand_out.next(conn)
                        if got is not None:
                            staging.index_copied(conn)
                    if got is None:
                        return
                    span, size = got
                    held = _counted(part, _apply_chunk(conn, span, part, now, source, secret,
                                                       sqlite=False))
                    hand_out.done(size, held)
            finally:
                _drop_staging(conn)
    except BaseException as exc:  # raised by _apply_parallel
        hand_out.stop(exc)
    finally:
        ended.set()


def _drop_staging(conn: Connection) -> None:
    """Drop the connection's staging tables; a connection that cannot is closed (the server
    drops a session's temporary tables with it), never pooled with them."""
    try:
        if conn.in_transaction():
            conn.rollback()
        with conn.begin():
            staging.drop(conn)
    except Exception:
        conn.invalidate()


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
