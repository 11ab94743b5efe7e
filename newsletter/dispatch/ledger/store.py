"""The ledger's hold on its database: fenced writes that wait out other writers.

Every ledger write is one transaction run by `LedgerStore.write()`. When the database is busy
(SQLite: another process holds the write lock, e.g. a long import or `serve`'s webhooks;
PostgreSQL: a lock that cannot be had, a deadlock or a serialisation failure) the transaction
is tried again with back-off, for up to the write policy's patience (NEWSLETTER_LEDGER_PATIENCE
seconds, default 300; each try also waits for the lock itself, up to 30 s: SQLite's busy
timeout, PostgreSQL's lock_timeout). A database
that stays locked longer, or a full disk, raises `LedgerUnavailable`: the send stops cleanly,
with that reason. A failed try changed nothing (it never committed), so trying again is safe.

A run's writes are fenced by its lease (`fence()`): the last statement of each checks that this
process still holds the send's lease token while it renews the heartbeat and moves the send's
counts, and a write whose token is no longer the send's is rolled back and raises `LeaseLost`.
Being last, it holds the send's row (on PostgreSQL, its row lock) only until the commit: the
concurrent writes of one run (an HTTP provider's workers) do their recipient work side by side and
queue only for each other's commit. A takeover (`Sends.acquire`, `send cancel`) changes the
token under the same row lock, so a write either commits before it or changes nothing.

Batch numbers are handed out by the process that holds the lease (`next_batch()`), from the
send's count at the takeover on, and stored by each hand-over's fence: no write has to lock
the send's row to number its batch.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, case, update
from sqlalchemy.exc import DBAPIError

from newsletter.audience.model import utcnow
from newsletter.core.errors import FailedError
from newsletter.core.settings import ProcessSettings, process
from newsletter.db.engine import SQLITE_BUSY_TIMEOUT_S, write_connection
from newsletter.db.ledger_tables import sends

T = TypeVar("T")

#: SQLite's primary result codes for a busy or locked database, a full disk, an I/O error
_SQLITE_BUSY = {5: "database is locked by another writer", 6: "database table is locked"}
_SQLITE_BROKEN = {13: "the disk is full", 10: "disk I/O error"}
#: PostgreSQL SQLSTATEs worth another try, and those that mean the disk or server is full
_PG_BUSY = {"40001": "serialisation failure", "40P01": "deadlock", "55P03": "lock not available"}
_PG_BROKEN = {"53100": "the disk is full", "53200": "the server is out of memory",
              "58030": "disk I/O error"}


class LeaseLost(FailedError):
    """Another process took this send's lease over: this process must not write to it."""


class SendBusy(FailedError):
    """Another send of the same issue is under way or stopped and not yet resumed."""


class SendFinished(SendBusy):
    """The send to resume completed meanwhile (another process finished it)."""


class LedgerUnavailable(FailedError):
    """The database refused a ledger write for longer than the write policy allows (a lock
    held elsewhere) or cannot store it (a full disk): the send stops, with this reason."""


@dataclass(frozen=True)
class WritePolicy:
    """How long a ledger write waits for a busy database, and how it backs off."""

    patience: float = ProcessSettings.ledger_patience  # seconds, over every try of one write
    first_wait: float = 0.05
    longest_wait: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WritePolicy:
        """The policy with NEWSLETTER_LEDGER_PATIENCE (newsletter.core.settings)."""
        return cls(patience=process(env).ledger_patience)


def trouble(exc: DBAPIError) -> tuple[bool, str] | None:
    """(worth another try, why) when `exc` is the database being busy, full or failing;
    None for any other error (a bug, a broken schema: not retried)."""
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            code &= 0xFF
            if code in _SQLITE_BUSY:
                return True, _SQLITE_BUSY[code]
            if code in _SQLITE_BROKEN:
                return True, _SQLITE_BROKEN[code]
        text = str(orig).lower()
        if "locked" in text or "busy" in text:
            return True, "database is locked by another writer"
        if "disk" in text and ("full" in text or "i/o" in text):
            return True, str(orig)
        return None
    state = getattr(orig, "sqlstate", None)
    if state in _PG_BUSY:
        return True, _PG_BUSY[state]
    if state in _PG_BROKEN:
        return True, _PG_BROKEN[state]
    return None


class LedgerStore:
    """One database engine, the lease tokens this process holds (per send id) and the write
    policy; the ledger's parts share it."""

    def __init__(self, engine: Engine, policy: WritePolicy | None = None):
        self.engine = engine
        self.policy = policy or WritePolicy.from_env()
        self.leases: dict[int, int] = {}
        self.batches: dict[int, int] = {}  # per send: the last batch number handed out
        self.sqlite = engine.dialect.name == "sqlite"
        #: The engine for a send's reads of one statement each (a batch, its consent check,
        #: the guard's figures). PostgreSQL: in autocommit, so a read is one round trip, with no
        #: BEGIN before it and no ROLLBACK after (on SQLite a read opens no transaction anyway).
        self.reads = engine if self.sqlite else engine.execution_options(
            isolation_level="AUTOCOMMIT")
        self._numbers = threading.Lock()

    def hold(self, send_id: int, token: int, batches: int) -> None:
        """This process now holds the send's lease `token`; its batches so far: `batches`."""
        with self._numbers:
            self.leases[send_id] = token
            self.batches[send_id] = batches

    def let_go(self, send_id: int) -> None:
        with self._numbers:
            self.leases.pop(send_id, None)
            self.batches.pop(send_id, None)

    def skip_to(self, send_id: int, number: int) -> None:
        """The send's next batch number is above `number`."""
        with self._numbers:
            if send_id in self.leases:
                self.batches[send_id] = max(self.batches.get(send_id, 0), number)

    def next_batch(self, send_id: int) -> int:
        """The next batch number of a send whose lease this process holds (LeaseLost when it
        holds none): unique within the send and growing, however many workers ask at once."""
        with self._numbers:
            if send_id not in self.leases:
                raise LeaseLost(f"send #{send_id}: another process took the send over; this "
                                "one stops without handing anything over")
            number = self.batches[send_id] = self.batches.get(send_id, 0) + 1
            return number

    def analyse(self) -> None:
        """PostgreSQL: refresh the ledger's statistics (ANALYZE samples a fixed number of
        pages: a fraction of a second however large the ledger). Only a help to the
        planner: a database that refuses it now is left to autovacuum."""
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE send_recipients")
        except DBAPIError:
            pass

    def write(self, work: Callable[[Connection], T], *, patience: float | None = None,
              durable: bool = True) -> T:
        """Run `work(conn)` in one write transaction, trying again with back-off while the
        database is busy; LedgerUnavailable once the patience is used up.

        `durable=False` (PostgreSQL): the commit does not wait for its WAL to reach the disk
        (`synchronous_commit = off`, as SQLite's WAL commits with `synchronous=NORMAL` do not
        either). Only for writes whose loss in a server crash is safe: an outcome lost that way
        leaves its rows `unknown`, as a crash of the sender would, never `pending`; and the next
        durable commit (every hand-over) flushes it with its own."""
        budget = self.policy.patience if patience is None else patience
        deadline = time.monotonic() + budget
        wait = self.policy.first_wait
        tries = 0
        while True:
            tries += 1
            try:
                return self._once(work, max(0.05, deadline - time.monotonic()), durable)
            except DBAPIError as exc:
                found = trouble(exc)
                if found is None:
                    raise
                again, why = found
                left = deadline - time.monotonic()
                if not again or left <= 0:
                    raise LedgerUnavailable(
                        f"the send ledger could not be written for {budget:g} s ({why}; "
                        f"{tries} {'try' if tries == 1 else 'tries'})") from None
                time.sleep(min(left, wait * random.uniform(0.5, 1.0)))
                wait = min(self.policy.longest_wait, wait * 2)

    def _once(self, work: Callable[[Connection], T], seconds: float, durable: bool) -> T:
        wait_ms = int(min(seconds, SQLITE_BUSY_TIMEOUT_S) * 1000)
        with write_connection(self.engine) as conn:
            raw = conn.connection.driver_connection if self.sqlite else None
            if raw is not None:  # SQLite's own wait for the lock: no longer than we have
                raw.execute(f"PRAGMA busy_timeout = {wait_ms}")
            try:
                with conn.begin():
                    if not self.sqlite:  # PostgreSQL waits for a lock no longer than we have
                        conn.exec_driver_sql(
                            f"SELECT set_config('lock_timeout', '{wait_ms}ms', true)"
                            + ("" if durable else
                               ", set_config('synchronous_commit', 'off', true)"))
                    return work(conn)
            finally:
                if raw is not None:
                    try:
                        raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
                    except sqlite3.Error:
                        pass

    def fence(self, conn: Connection, send_id: int, **values: Any) -> None:
        """Last statement of every write of a run: renew the heartbeat and set `values` on
        the send's row (its counts), provided this process still holds the lease; else
        LeaseLost, and the transaction is rolled back. On PostgreSQL the row stays locked
        from here to the commit (nothing else comes after it), so a takeover waits for
        that commit, or this statement waits for the takeover's and then finds the token
        changed."""
        token = self.leases.get(send_id)
        changed = conn.execute(update(sends).where(
            sends.c.id == send_id, sends.c.lease == token, sends.c.owner.is_not(None)
        ).values(heartbeat_at=utcnow(), **values)).rowcount if token is not None else 0
        if changed != 1:
            self.let_go(send_id)
            raise LeaseLost(f"send #{send_id}: another process took the send over; this one "
                            "stops without writing")


def at_least(number: int) -> Any:
    """`sends.batches` raised to `number` (never lowered: hand-overs commit in any order)."""
    return case((sends.c.batches < number, number), else_=sends.c.batches)
