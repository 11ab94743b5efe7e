"""Apply a batch of webhook events in one transaction, each event exactly once.

1. record every event in `webhook_events` with its detail and its human-or-machine verdict
   (newsletter.events.verdicts) with INSERT ... ON CONFLICT DO NOTHING RETURNING: the ids that
   come back are new, the rest were applied before (SendGrid retries);
2. change subscriber statuses (newsletter.events.statuses);
3. add the engagement counts per send and recipient with one bulk upsert.
All three commit together, so a crash mid-batch leaves nothing half applied and the retried
batch is applied in full.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError

from newsletter.audience.model import utcnow
from newsletter.db.engine import write_connection
from newsletter.db.tables import ENGAGEMENT_COUNTERS, engagement, webhook_events
from newsletter.events.classify import Thresholds
from newsletter.events.statuses import Change, apply_changes
from newsletter.events.verdicts import Verdicts, judge
from newsletter.providers.sendgrid.webhook import Event

_CHUNK = 1000


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


def _ts(seconds: int) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(seconds, dt.UTC) if seconds else None


def _record_new(conn: Connection, events: Sequence[Event], now: dt.datetime,
                verdicts: Verdicts) -> set[str]:
    """Insert the events; return the ids that were not there before."""
    fresh: set[str] = set()
    events = sorted(events, key=lambda e: e.event_id)  # one lock order for concurrent batches
    stmt = dialect_insert(conn, webhook_events).on_conflict_do_nothing().returning(
        webhook_events.c.sg_event_id)
    reasons, positions = verdicts.reasons, verdicts.positions
    detailed = ("open", "click")
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        rows = [{"sg_event_id": e.event_id, "event": e.kind, "email_key": e.email_key,
                 "send_id": e.send_id, "occurred_at": _ts(e.timestamp), "received_at": now}
                for e in chunk if e.kind not in detailed]
        if rows:  # most events have no detail: the narrow statement is cheaper
            fresh.update(conn.execute(stmt, rows).scalars())
        rows = [{"sg_event_id": e.event_id, "event": e.kind, "email_key": e.email_key,
                 "send_id": e.send_id, "occurred_at": _ts(e.timestamp), "received_at": now,
                 "url": e.url, "position": positions.get(e.event_id, e.position),
                 "user_agent": e.user_agent, "ip": e.ip, "provider_machine": e.provider_machine,
                 "machine": e.event_id in reasons, "reason": reasons.get(e.event_id)}
                for e in chunk if e.kind in detailed]
        if rows:
            fresh.update(conn.execute(stmt, rows).scalars())
    return fresh


def _known_sends(conn: Connection, ids: set[int]) -> set[int]:
    from newsletter.db.ledger_tables import sends

    if not ids:
        return set()
    return set(conn.execute(select(sends.c.id).where(sends.c.id.in_(sorted(ids)))).scalars())


def _count(conn: Connection, events: Sequence[Event]) -> None:
    """Add each event to its send and recipient's counters (one upsert statement)."""
    counted = [e for e in events if e.counter and e.send_id is not None]
    sends = _known_sends(conn, {e.send_id for e in counted if e.send_id is not None})
    totals: dict[tuple[int, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(ENGAGEMENT_COUNTERS, 0))
    last: dict[tuple[int, str], int] = {}
    for e in counted:
        if e.send_id not in sends:
            continue
        key = (e.send_id, e.email_key)
        totals[key][e.counter] += 1  # type: ignore[index]
        last[key] = max(last.get(key, 0), e.timestamp)
    if not totals:
        return
    stmt = dialect_insert(conn, engagement)
    stmt = stmt.on_conflict_do_update(
        index_elements=[engagement.c.send_id, engagement.c.email_key],
        set_={**{name: engagement.c[name] + stmt.excluded[name] for name in ENGAGEMENT_COUNTERS},
              "last_event_at": stmt.excluded.last_event_at},
    )
    conn.execute(stmt, [{"send_id": send_id, "email_key": key, **counts,
                         "last_event_at": _ts(last[(send_id, key)])}
                        for (send_id, key), counts in sorted(totals.items())])


def apply_events(conn: Connection, events: Sequence[Event], now: dt.datetime | None = None,
                 limits: Thresholds | None = None) -> ApplyReport:
    """Apply `events` inside the caller's transaction."""
    now = now or utcnow()
    unique = list({e.event_id: e for e in reversed(events)}.values())[::-1]
    verdicts = judge(conn, unique, limits or Thresholds())
    fresh_ids = _record_new(conn, unique, now, verdicts) if unique else set()
    verdicts.mark_earlier(conn)
    fresh = [e for e in unique if e.event_id in fresh_ids]
    changes = [Change(e.email_key, e.status, e.timestamp or None)
               for e in fresh if e.status is not None]
    report = ApplyReport(received=len(events), applied=len(fresh),
                         duplicates=len(events) - len(fresh))
    report.status_changes = apply_changes(conn, changes, now)
    _count(conn, fresh)
    return report


def apply_batch(engine: Engine, events: Sequence[Event], attempts: int = 3,
                limits: Thresholds | None = None) -> ApplyReport:
    """Apply `events` in one write transaction (taken up front on SQLite). Rows are locked in
    one order (event id, address), and a PostgreSQL deadlock or serialization failure between
    concurrent batches is retried."""
    for attempt in range(1, attempts + 1):
        try:
            with write_connection(engine) as conn, conn.begin():
                return apply_events(conn, events, limits=limits)
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if attempt == attempts or code not in ("40P01", "40001"):
                raise
    raise AssertionError("unreachable")
