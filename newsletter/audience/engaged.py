"""Each subscriber's last human engagement: `subscribers.last_engaged_at`, the time of their
latest human open or click in `webhook_events` (NULL: none stored).

It is what `engaged_within` and `subscribers sunset` read (newsletter.audience.engagement): a
test of the subscriber's own row, so a segment that mixes engagement with other conditions is
one scan of `subscribers` instead of a join with a million events. It is a copy of what the
events say, so every change to those events keeps it true in the same transaction, through
this module alone:

- `note_engaged`: events just stored (webhook ingest, our click redirects, the bounce mailbox)
  can only move it later: one UPDATE per batch that raises it to the batch's latest human
  open or click of each address (`greatest`, safe against concurrent batches: PostgreSQL
  re-checks the row's value after waiting for its lock);
- `refresh_engaged`: anything else (stored clicks re-judged machine, pruning, a subscriber
  created for an address that already has events) recomputes it from the events of the
  addresses concerned (`ix_webhook_events_key_time`), set-based. On PostgreSQL the rows are
  locked first, in key order, and recomputed by a later statement, whose snapshot includes
  whatever a concurrent batch committed while we waited: no lost update.

An erasure needs nothing here: it deletes the subscriber, and moves the events to an anonymous
key that no subscriber has. Migration 16 fills the column from the events already stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, exists, false, func, select, update

from newsletter.db.tables import subscribers, webhook_events

#: The stored events that are engagement (when a human's).
ENGAGING = ("open", "click")
_CHUNK = 900  # keys per statement: under SQLite's oldest limit of 999 parameters


def _human(*where: Any) -> Select:
    """Each address's latest human open or click among the events `where` selects."""
    e = webhook_events.c
    return (select(e.email_key, func.max(e.occurred_at).label("at"))
            .where(e.event.in_(ENGAGING), e.machine.is_(false()), e.occurred_at.is_not(None),
                   *where)
            .group_by(e.email_key))


def note_engaged(conn: Connection, events: Iterable[tuple[str, str, bool, int]]) -> None:
    """Raise `last_engaged_at` for events just stored: (email_key, stored name, machine,
    Unix seconds; 0 for no time). One statement per batch; only rows it moves are written."""
    latest: dict[str, int] = {}
    for key, name, machine, at in events:
        if at and not machine and name in ENGAGING and at > latest.get(key, 0):
            latest[key] = at
    if not latest:
        return
    column = subscribers.c.last_engaged_at.type.dialect_impl(conn.dialect)
    process = column.bind_processor(conn.dialect) or (lambda value: value)
    rows = [(key, process(dt.datetime.fromtimestamp(at, dt.UTC)))
            for key, at in sorted(latest.items())]  # key order: one lock order
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "UPDATE subscribers AS s SET last_engaged_at = v.at "
            "FROM unnest(%b::text[], %b::timestamp[]) AS v(key, at) "
            "WHERE s.email_key = v.key AND (s.last_engaged_at IS NULL "
            "OR s.last_engaged_at < v.at)",
            ([key for key, _ in rows], [at for _, at in rows]))
    else:
        conn.exec_driver_sql(
            "UPDATE subscribers SET last_engaged_at = ? WHERE email_key = ? AND "
            "(last_engaged_at IS NULL OR last_engaged_at < ?)",
            [(at, key, at) for key, at in rows])


def refresh_engaged(conn: Connection, keys: Sequence[str] | Select | None = None) -> None:
    """Recompute `last_engaged_at` from the events of the subscribers with these `keys` (a
    list, or a SELECT of email keys), or of everyone (None: a bulk load's, not safe beside
    concurrent writers on PostgreSQL)."""
    if keys is None or isinstance(keys, Select):
        _recompute(conn, keys)
        return
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        if conn.dialect.name == "postgresql":
            conn.execute(select(subscribers.c.id).where(subscribers.c.email_key.in_(chunk))
                         .order_by(subscribers.c.email_key).with_for_update())
        _recompute(conn, chunk)


def _recompute(conn: Connection, keys: Sequence[str] | Select | None) -> None:
    """Two set-based statements: the latest human engagement of those who have one, NULL
    for those who have none left; only rows whose value changes are written."""
    s = subscribers.c
    mine = [] if keys is None else [s.email_key.in_(keys)]
    theirs = [] if keys is None else [webhook_events.c.email_key.in_(keys)]
    found = _human(*theirs).subquery("engaged")
    conn.execute(update(subscribers)
                 .where(s.email_key == found.c.email_key, *mine,
                        s.last_engaged_at.is_distinct_from(found.c.at))
                 .values(last_engaged_at=found.c.at))
    e = webhook_events.c
    gone = exists().where(e.email_key == s.email_key, e.event.in_(ENGAGING),
                          e.machine.is_(false()), e.occurred_at.is_not(None))
    conn.execute(update(subscribers)
                 .where(s.last_engaged_at.is_not(None), *mine, ~gone)
                 .values(last_engaged_at=None))


def engaged_since(since: dt.datetime) -> Any:
    """Subscribers whose last human engagement is at or after `since` (never NULL)."""
    column = subscribers.c.last_engaged_at
    return and_(column.is_not(None), column >= since)
