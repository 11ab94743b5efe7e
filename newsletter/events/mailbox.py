"""Applying what the bounce mailbox said: the events store, statuses and per-send counters.

`apply_readings` takes the readings of a batch of mailbox messages
(newsletter.providers.bounces.classify) and, inside the caller's write transaction:

1. settles each event's address and send: a signed VERP token names the ledger row, whose
   address is the one we mailed (a forwarding address in the bounce does not matter); our
   Message-ID in the returned original is not signed, so it names a row only when that row's
   address is the one the bounce reports; an event left with no address is counted as
   unattributed and dropped;
2. drops events about erased addresses (newsletter.audience.erasure): they leave no trace;
3. records each event in `webhook_events` under `mailbox:<event id>`, in the names
   newsletter.events.policy gives it: an event stored before (a message read again after a
   crash, or by a second reader at the same time) is a duplicate and changes nothing more;
4. asks the policy what each new event means (for a soft bounce, counting the address's soft
   bounces within the limit's window, with the subscriber's row locked on PostgreSQL so two
   readers count each other's) and applies the statuses through the ladder's one API,
   recorded in the audit trail as made via the mailbox;
5. adds each new event to its send's `engagement` counters (reports, the reputation guard).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, case, or_, select

from newsletter.audience.engaged import note_engaged
from newsletter.audience.erasure import anonymised, erased_at
from newsletter.audience.history import Source
from newsletter.audience.model import email_key, utcnow
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import engagement, webhook_events
from newsletter.events.apply import dialect_insert
from newsletter.events.policy import (
    SoftBounceLimit,
    is_soft_bounce,
    lock_subscribers,
    soft_bounce_counts,
    status_for,
    stored,
)
from newsletter.events.statuses import Change, apply_changes
from newsletter.providers.bounces.classify import Reading
from newsletter.providers.events import Kind, ProviderEvent

STORE_PREFIX = "mailbox:"


@dataclass
class Applied:
    """What one batch of readings did to the database."""

    new: list[ProviderEvent] = dataclasses.field(default_factory=list)
    duplicates: int = 0
    unattributed: int = 0
    erased: int = 0
    status_changes: int = 0


def store_key(event: ProviderEvent) -> str:
    """The event's key in webhook_events (apart from SendGrid's own ids)."""
    return f"{STORE_PREFIX}{event.event_id}"


def _settle(conn: Connection, readings: Sequence[Reading], applied: Applied
            ) -> list[ProviderEvent]:
    """Each event with its address and send settled (see the module's docstring, step 1);
    one event per message, kind and address."""
    rows_wanted = {e.recipient_id for r in readings for e in r.events if e.recipient_id}
    rows: dict[int, tuple[int, str]] = {}
    if rows_wanted:
        query = select(send_recipients.c.id, send_recipients.c.send_id,
                       send_recipients.c.email).where(send_recipients.c.id.in_(rows_wanted))
        rows = {rid: (sid, address) for rid, sid, address in conn.execute(query)}
    settled: list[ProviderEvent] = []
    for reading in readings:
        seen: set[tuple[Kind, str]] = set()
        for event in reading.events:
            row = rows.get(event.recipient_id or 0)
            if row is not None and row[0] != event.send_id:
                row = None
            if reading.attribution == "verp" and row is not None:
                event = dataclasses.replace(event, email=row[1])
            elif reading.attribution == "message-id" and not (
                    row is not None and event.email and email_key(row[1]) == email_key(
                        event.email)):
                event = dataclasses.replace(event, send_id=None, recipient_id=None)
            if not event.email:
                applied.unattributed += 1
                continue
            if (event.kind, email_key(event.email)) in seen:
                continue
            seen.add((event.kind, email_key(event.email)))
            settled.append(event)
    return settled


def _record(conn: Connection, events: list[ProviderEvent], now: dt.datetime,
            known_sends: set[int]) -> list[ProviderEvent]:
    """Store the events not stored before (in key order: one lock order); return those."""
    fresh = []
    for event in sorted(events, key=store_key):
        values = {
            "sg_event_id": store_key(event), "event": stored(event)[0],
            "email_key": email_key(event.email),
            "send_id": event.send_id if event.send_id in known_sends else None,
            "occurred_at": dt.datetime.fromtimestamp(event.timestamp, dt.UTC),
            "received_at": now,
        }
        added = conn.execute(dialect_insert(conn, webhook_events).values(**values)
                             .on_conflict_do_nothing(index_elements=["sg_event_id"])
                             .returning(webhook_events.c.sg_event_id)).first()
        if added is not None:
            fresh.append(event)
    return fresh


def _count(conn: Connection, events: list[ProviderEvent]) -> None:
    """Add each event to its send and recipient's engagement counter; the pair's
    `last_event_at` becomes its latest event's time."""
    totals: dict[tuple[int, str, str], tuple[int, int]] = {}
    for event in events:
        counter = stored(event)[1]
        if event.send_id is not None and counter:
            key = (event.send_id, email_key(event.email), counter)
            count, last = totals.get(key, (0, 0))
            totals[key] = (count + 1, max(last, event.timestamp))
    e = engagement.c
    for (send_id, key, counter), (add, last) in sorted(totals.items()):
        insert = dialect_insert(conn, engagement).values(
            send_id=send_id, email_key=key, last_event_at=dt.datetime.fromtimestamp(last, dt.UTC),
            **{counter: add})
        later = insert.excluded.last_event_at
        conn.execute(insert.on_conflict_do_update(
            index_elements=["send_id", "email_key"],
            set_={counter: e[counter] + insert.excluded[counter],
                  "last_event_at": case((or_(e.last_event_at.is_(None), later > e.last_event_at),
                                         later), else_=e.last_event_at)}))


def apply_readings(conn: Connection, readings: Sequence[Reading], *, secret: str | None,
                   limit: SoftBounceLimit | None = None, now: dt.datetime | None = None
                   ) -> Applied:
    """Apply the events of `readings` inside the caller's write transaction (see the module's
    docstring); `secret` checks the erasure list."""
    now, limit, applied = now or utcnow(), limit or SoftBounceLimit(), Applied()
    now_s = int(now.timestamp())
    events = [dataclasses.replace(e, timestamp=min(e.timestamp or now_s, now_s))
              for e in _settle(conn, readings, applied)]
    # the row mailed may belong to someone erased since: its address is a stand-in now
    gone = {e.email for e in events if anonymised(e.email)}
    gone |= set(erased_at(conn, secret, sorted({e.email for e in events} - gone)))
    applied.erased = sum(1 for e in events if e.email in gone)
    events = [e for e in events if e.email not in gone]
    wanted = {e.send_id for e in events if e.send_id is not None}
    known = set(conn.execute(select(sends.c.id).where(sends.c.id.in_(wanted))).scalars()) \
        if wanted else set()
    fresh = _record(conn, events, now, known)
    note_engaged(conn, [(email_key(e.email), stored(e)[0], False, e.timestamp) for e in fresh])
    applied.duplicates = len(events) - len(fresh)
    applied.new = fresh
    soft = [e for e in fresh if is_soft_bounce(e)]
    lock_subscribers(conn, {email_key(e.email) for e in soft})
    counts = dict(zip((e.event_id for e in soft), soft_bounce_counts(
        conn, [(email_key(e.email), e.timestamp) for e in soft], limit), strict=True))
    changes = []
    for event in sorted(fresh, key=lambda e: e.timestamp):
        status = status_for(event, counts.get(event.event_id, 0), limit)
        if status is not None:
            changes.append(Change(email_key(event.email), status, event.timestamp))
    applied.status_changes = apply_changes(conn, changes, now, via=Source.MAILBOX)
    _count(conn, [dataclasses.replace(e, send_id=e.send_id if e.send_id in known else None)
                  for e in fresh])
    return applied
