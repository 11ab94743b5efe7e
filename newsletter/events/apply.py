"""Apply a batch of provider events (newsletter.providers.events: every provider's webhook, our
own click redirects) in one transaction, each event exactly once.

0. ask the erasure list (newsletter.audience.erasure.screen): an event of an erased address
   (or one that predates its owner's return) is kept only under an anonymous key, without user
   agent, IP or a URL that names the address, so it counts for its send and for nobody;
1. judge every open and click human or machine (newsletter.events.verdicts: a few look-ups per
   batch, never one per event);
2. record every event in `webhook_events` with its detail and verdict, under the name the one
   policy gives it (newsletter.events.policy); only the events not stored before count
   (providers retry);
3. change subscriber statuses as the policy says (a soft bounce counts the address's soft
   bounces, with their rows locked on PostgreSQL) through the ladder
   (newsletter.events.statuses);
4. add the engagement counts per send and recipient with one bulk upsert, and move each
   person's last human engagement (newsletter.audience.engaged) with one update.
All of it commits together, so a crash mid-batch leaves nothing half applied and the retried
batch is applied in full. A signed post that must not be replayed (Mailgun's token, an SNS
message's id) names its token:
it is stored in `webhook_tokens` in the same transaction, so a replay is refused (`Replayed`)
by every `serve` worker, and a post whose events could not be stored can be retried; tokens
older than the window they are accepted in are deleted as new ones arrive.

The bulk writes go to the driver as plain rows (tuples), not through SQLAlchemy's per-row
parameter processing, which cost more than the database's own work (newsletter.events.rawsql):
SQLite gets one `executemany` for the events after one look-up of the ids already stored (the
transaction holds the write lock from its start, so nothing can come between), and one for the
counters; PostgreSQL one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING`
for the events (concurrent batches may race there; the ids that come back are the new ones) and
one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` for the counters, their columns
sent as arrays in binary. Timestamps are converted by the column type's own bind processor,
once per distinct second. On SQLite a large batch's checkpoint of the write-ahead log runs
after the write lock is free (`apply_batch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import DBAPIError

from newsletter.audience.engaged import note_engaged
from newsletter.audience.erasure import Secrets, anonymous_key, mentions, screen, spellings
from newsletter.audience.model import utcnow
from newsletter.db.engine import write_connection
from newsletter.db.tables import ENGAGEMENT_COUNTERS, webhook_events, webhook_tokens
from newsletter.events import rawsql
from newsletter.events.classify import Thresholds
from newsletter.events.policy import (
    SoftBounceLimit,
    is_soft_bounce,
    lock_subscribers,
    may_retire,
    soft_bounce_counts,
    status_for,
)
from newsletter.events.statuses import Change, apply_changes
from newsletter.events.stored import Stored
from newsletter.events.verdicts import Verdicts, judge
from newsletter.providers.events import ProviderEvent

#: webhook_events columns in the order of the row tuples; PostgreSQL array types for unnest
_EVENT_COLUMNS = (("sg_event_id", "text"), ("event", "text"), ("email_key", "text"),
                  ("send_id", "bigint"), ("occurred_at", "timestamp"),
                  ("received_at", "timestamp"), ("url", "text"), ("position", "integer"),
                  ("user_agent", "text"), ("ip", "text"), ("provider_machine", "boolean"),
                  ("machine", "boolean"), ("reason", "text"))
_COUNTER_INDEX = {name: n for n, name in enumerate(ENGAGEMENT_COUNTERS)}


@dataclass
class ApplyReport:
    """What one webhook request did."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    status_changes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def dialect_insert(conn: Connection, table):
    """INSERT with ON CONFLICT support for this connection's database."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _stamper(conn: Connection) -> Callable[[int], Any]:
    """Unix seconds -> the value the driver stores for a UtcDateTime column (0: NULL),
    converted by the column type itself and remembered per second."""
    column_type = webhook_events.c.occurred_at.type.dialect_impl(conn.dialect)
    process = column_type.bind_processor(conn.dialect) or (lambda value: value)
    seen: dict[int, Any] = {0: None}

    def stamp(seconds: int) -> Any:
        value = seen.get(seconds, seen)
        if value is seen:
            value = seen[seconds] = process(dt.datetime.fromtimestamp(seconds, dt.UTC))
        return value

    return stamp


class Replayed(Exception):
    """A signed post whose token was stored before: refused, nothing applied."""


def _rows(events: Sequence[Stored], now: dt.datetime, verdicts: Verdicts,
          stamp: Callable[[int], Any]) -> list[tuple]:
    """One tuple per event (in _EVENT_COLUMNS order), sorted by event id: one lock order for
    concurrent batches."""
    received = stamp(int(now.timestamp()))
    reasons, positions = verdicts.reasons, verdicts.positions
    rows = []
    for e in sorted(events, key=lambda e: e.event_id):
        reason = reasons.get(e.event_id)
        rows.append((e.event_id, e.name, e.email_key, e.send_id, stamp(e.timestamp), received,
                     e.url, positions.get(e.event_id, e.position), e.user_agent, e.ip,
                     e.provider_machine, reason is not None, reason))
    return rows


def _stored(conn: Connection, ids: list[str]) -> set[str]:
    """Which of `ids` are already in webhook_events (SQLite: an IN list per chunk)."""
    found: set[str] = set()
    for chunk in rawsql.chunks(conn, ids):
        among, values = rawsql.among(conn, chunk, "text")
        found.update(conn.exec_driver_sql(
            f"SELECT sg_event_id FROM webhook_events WHERE sg_event_id {among}", values).scalars())
    return found


def _record_new(conn: Connection, rows: list[tuple]) -> set[str]:
    """Insert the rows whose event id is not stored yet; return those ids."""
    names = ", ".join(name for name, _ in _EVENT_COLUMNS)
    if rawsql.postgres(conn):
        arrays = ", ".join(rawsql.array(kind) for _, kind in _EVENT_COLUMNS)
        sql = (f"INSERT INTO webhook_events ({names}) SELECT * FROM unnest({arrays}) "
               "ORDER BY 1 ON CONFLICT DO NOTHING RETURNING sg_event_id")
        return set(conn.exec_driver_sql(sql, tuple(list(c) for c in zip(*rows, strict=True)))
                   .scalars())
    stored = _stored(conn, [row[0] for row in rows])
    new = [row for row in rows if row[0] not in stored]
    if new:
        marks = ", ".join("?" for _ in _EVENT_COLUMNS)
        conn.exec_driver_sql(f"INSERT INTO webhook_events ({names}) VALUES ({marks})", new)
    return {row[0] for row in new}


def _known_sends(conn: Connection, ids: set[int]) -> set[int]:
    from newsletter.db.ledger_tables import sends

    if not ids:
        return set()
    return set(conn.execute(select(sends.c.id).where(sends.c.id.in_(sorted(ids)))).scalars())


def _count(conn: Connection, events: Sequence[Stored], stamp: Callable[[int], Any]) -> None:
    """Add each event to its send and recipient's counters (one bulk upsert). The pair's
    `last_event_at` becomes its latest event's time, whatever order events arrive in."""
    counted = [(e, counter) for e in events
               if e.send_id is not None and (counter := e.counter)]
    sends = _known_sends(conn, {e.send_id for e, _ in counted})  # type: ignore[misc]
    totals: dict[tuple[int, str], list[int]] = {}
    width = len(ENGAGEMENT_COUNTERS)
    for e, counter in counted:
        if e.send_id not in sends:
            continue
        key = (e.send_id, e.email_key)
        found = totals.get(key)  # type: ignore[arg-type]
        if found is None:
            found = totals[key] = [0] * (width + 1)  # type: ignore[index]
        found[_COUNTER_INDEX[counter]] += 1
        found[width] = max(found[width], e.timestamp)
    if not totals:
        return
    names = ", ".join(ENGAGEMENT_COUNTERS)
    adds = ", ".join(f"{n} = engagement.{n} + excluded.{n}" for n in ENGAGEMENT_COUNTERS)
    upsert = (" ON CONFLICT (send_id, email_key) DO UPDATE SET "
              f"{adds}, last_event_at = CASE WHEN engagement.last_event_at IS NULL OR "
              "excluded.last_event_at > engagement.last_event_at THEN excluded.last_event_at "
              "ELSE engagement.last_event_at END")
    rows = [(send_id, key, *counts[:width], stamp(counts[width]))
            for (send_id, key), counts in sorted(totals.items())]  # key order: one lock order
    into = f"INSERT INTO engagement (send_id, email_key, {names}, last_event_at) "
    if rawsql.postgres(conn):  # one statement, not one per pair
        kinds = ("bigint", "text", *["integer"] * width, "timestamp")
        arrays = ", ".join(rawsql.array(kind) for kind in kinds)
        conn.exec_driver_sql(f"{into}SELECT * FROM unnest({arrays}) ORDER BY 1, 2{upsert}",
                             tuple(list(c) for c in zip(*rows, strict=True)))
    else:
        marks = ", ".join(["?"] * (width + 3))
        conn.exec_driver_sql(f"{into}VALUES ({marks}){upsert}", rows)


def anonymise_erased(conn: Connection, events: Sequence[Stored],
                     secrets: Secrets) -> list[Stored]:
    """`events`, with those the erasure list says are no longer anyone's moved to an
    anonymous key (one per address in the batch) without user agent and IP."""
    gone = screen(conn, secrets, [(e.email, e.send_id, e.timestamp) for e in events])
    if not gone:
        return list(events)
    keys: dict[str, str] = {}
    out = list(events)
    for n in gone:
        e = out[n]
        key = keys.setdefault(e.email_key, anonymous_key())
        url = None if mentions(e.url, spellings(e.email)) else e.url
        out[n] = dataclasses.replace(e, email=key, email_key=key, user_agent=None, ip=None,
                                     url=url)
    return out


def _changes(conn: Connection, fresh: Sequence[Stored], soft: SoftBounceLimit) -> list[Change]:
    """The status changes the policy asks for. With soft bounces among them, the rows of
    every address whose status may change are locked first (PostgreSQL; in key order), so
    concurrent batches count each other's soft bounces."""
    bounces = [e for e in fresh if is_soft_bounce(e.event)]
    counts: dict[str, int] = {}
    if bounces:
        lock_subscribers(conn, {e.email_key for e in fresh if may_retire(e.event)})
        now_s = int(utcnow().timestamp())
        found = soft_bounce_counts(conn, [(e.email_key, e.timestamp or now_s) for e in bounces],
                                   soft)
        counts = dict(zip((e.event_id for e in bounces), found, strict=True))
    return [Change(e.email_key, status, e.timestamp or None) for e in fresh
            if (status := status_for(e.event, counts.get(e.event_id, 0), soft)) is not None]


def apply_events(conn: Connection, events: Sequence[ProviderEvent],
                 now: dt.datetime | None = None, limits: Thresholds | None = None,
                 secrets: Secrets = None, soft: SoftBounceLimit | None = None) -> ApplyReport:
    """Apply `events` inside the caller's transaction (on SQLite, one that holds the write
    lock: `write_connection`). `secrets` (the rotation list) read the erasure list; `soft`
    is the soft-bounce limit (newsletter.yaml's `bounces:`)."""
    return _apply(conn, [Stored.of(e) for e in events], now, limits, secrets, soft)


def _apply(conn: Connection, rows: list[Stored], now: dt.datetime | None,
           limits: Thresholds | None, secrets: Secrets, soft: SoftBounceLimit | None
           ) -> ApplyReport:
    now = now or utcnow()
    rawsql.custom_plans(conn)
    rows = anonymise_erased(conn, rows, secrets)
    unique = list({e.event_id: e for e in reversed(rows)}.values())[::-1]
    report = ApplyReport(received=len(rows), duplicates=len(rows))
    if not unique:
        return report
    verdicts = judge(conn, unique, limits or Thresholds())
    stamp = _stamper(conn)
    fresh_ids = _record_new(conn, _rows(unique, now, verdicts, stamp))
    verdicts.mark_earlier(conn)
    fresh = [e for e in unique if e.event_id in fresh_ids]
    note_engaged(conn, [(e.email_key, e.name, e.event_id in verdicts.reasons, e.timestamp)
                        for e in fresh])
    report.applied, report.duplicates = len(fresh), len(rows) - len(fresh)
    report.status_changes = apply_changes(conn, _changes(conn, fresh, soft or SoftBounceLimit()),
                                          now)
    _count(conn, fresh, stamp)
    return report


def remember_token(conn: Connection, provider: str, token: str, window: dt.timedelta,
                   now: dt.datetime | None = None) -> bool:
    """Store a post's signature token; False when it was stored before (a replay)."""
    now = now or utcnow()
    conn.execute(delete(webhook_tokens).where(webhook_tokens.c.seen_at < now - 2 * window))
    statement = dialect_insert(conn, webhook_tokens).values(provider=provider, token=token,
                                                            seen_at=now)
    inserted = statement.on_conflict_do_nothing().returning(webhook_tokens.c.token)
    return conn.execute(inserted).first() is not None


def remember_once(engine: Engine, provider: str, token: str, window: dt.timedelta) -> bool:
    """`remember_token` in a transaction of its own (a post that carries no events)."""
    with write_connection(engine) as conn, conn.begin():
        return remember_token(conn, provider, token, window)


def token_seen(engine: Engine, provider: str, token: str) -> bool:
    """Whether `token` is stored already (a replay, or a post still being applied)."""
    with engine.connect() as conn:
        return conn.execute(select(webhook_tokens.c.token).where(
            webhook_tokens.c.provider == provider,
            webhook_tokens.c.token == token)).first() is not None


#: A batch of at least this many events checkpoints SQLite's write-ahead log after it lets go
#: of the write lock, not inside its commit (see `apply_batch`).
LARGE_BATCH = 100
#: Pages of SQLite's write-ahead log past which it is made to start over (see `_checkpoint`).
WAL_LIMIT = 16_000


def apply_batch(engine: Engine, events: Sequence[ProviderEvent], attempts: int = 3,
                limits: Thresholds | None = None, secrets: Secrets = None,
                soft: SoftBounceLimit | None = None,
                token: tuple[str, str, dt.timedelta] | None = None) -> ApplyReport:
    """Apply `events` in one write transaction (taken up front on SQLite), with the post's
    `token` (provider, token, window) when it has one (Replayed when that token was seen
    before). Rows are locked in one order (event id, address), and a PostgreSQL deadlock or
    serialization failure between concurrent batches is retried.

    On SQLite a large batch dirties thousands of pages, and the commit that reaches
    `wal_autocheckpoint` would copy them into the database file and wait for the disk while
    this process's other writers queue behind it (newsletter.db.engine's writer lock). So a
    large batch commits without that checkpoint and runs it (PASSIVE: it never blocks a
    writer or a reader) once the lock is free, beside the next batch's transaction."""
    rows = [Stored.of(e) for e in events]  # before the write lock is taken
    deferred = engine.dialect.name == "sqlite" and len(rows) >= LARGE_BATCH
    try:
        for attempt in range(1, attempts + 1):
            try:
                with write_connection(engine) as conn, _no_autocheckpoint(conn, deferred), \
                        conn.begin():
                    if token is not None and not remember_token(conn, *token):
                        raise Replayed(f"the {token[0]} signature token was used before")
                    return _apply(conn, rows, None, limits, secrets, soft)
            except DBAPIError as exc:
                code = getattr(exc.orig, "sqlstate", None)
                if attempt == attempts or code not in ("40P01", "40001"):
                    raise
        raise AssertionError("unreachable")
    finally:
        if deferred:
            _checkpoint(engine)


@contextlib.contextmanager
def _no_autocheckpoint(conn: Connection, wanted: bool) -> Iterator[None]:
    """SQLite: no automatic checkpoint at this connection's commits while inside (the
    connection's own setting, restored after; set on the driver's connection, outside any
    transaction)."""
    if not wanted:
        yield
        return
    raw = conn.connection.driver_connection
    before = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    raw.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")


def _checkpoint(engine: Engine) -> None:
    """SQLite: copy what the write-ahead log holds into the database file, as far as no
    reader still needs it (PASSIVE), on a connection of the pool outside any transaction.

    The log starts over from its beginning only when a transaction begins on a log copied in
    full, which a checkpoint running beside the next batch seldom leaves: under a steady
    stream of batches it grew past 1 GB at 1M people. So once it holds more than WAL_LIMIT
    pages, the checkpoint is run again with this process's writers held back, and the next
    batch starts the log over."""
    with engine.connect() as conn:
        _, pages, _ = conn.connection.driver_connection.execute(
            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if pages > WAL_LIMIT:
        with write_connection(engine) as conn:
            conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
