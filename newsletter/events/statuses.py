"""How events, suppressions and unsubscribe links change a subscriber's status.

The rules, in one place:

- statuses rank active < unsubscribed < bounced < complained; an event only moves a subscriber
  up that ladder (a bounce never hides a complaint, an unsubscribe never hides a bounce);
- an event older than the subscriber's last status change does not retire an active
  subscriber (they resubscribed after it happened);
- only a resubscribe (SendGrid's `group_resubscribe`, or a confirmed sign-up) returns an
  unsubscribed address to active; bounced and complained addresses come back only through a
  confirmed sign-up (newsletter.events.optin).

Unknown addresses are left alone: SendGrid keeps suppressing them on its side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update

from newsletter.audience.history import Change as Entry
from newsletter.audience.history import Source, record
from newsletter.audience.model import Status, utcnow
from newsletter.db.tables import subscribers

RANK = {Status.ACTIVE: 0, Status.UNSUBSCRIBED: 1, Status.BOUNCED: 2, Status.COMPLAINED: 3}
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class Change:
    """`email_key` should become `status`, because of something that happened `at` (unix s)."""

    email_key: str
    status: Status
    at: int | None = None  # None: now


def decide(current: Status, changed_at: int, change: Change, now: int) -> Status | None:
    """The new status `change` gives a subscriber in `current` since `changed_at`, or None."""
    at = now if change.at is None else change.at
    if change.status == Status.ACTIVE:
        ok = current == Status.UNSUBSCRIBED and at >= changed_at
        return Status.ACTIVE if ok else None
    if RANK[change.status] <= RANK[current]:
        return None
    if current == Status.ACTIVE and at < changed_at:
        return None
    return change.status


def apply_changes(conn: Connection, changes: Sequence[Change],
                  now: dt.datetime | None = None, via: Source = Source.WEBHOOK) -> int:
    """Apply `changes` in time order inside the caller's transaction (each recorded in the
    audit trail as made `via` the given source); return how many subscribers changed status."""
    if not changes:
        return 0
    now = now or utcnow()
    now_s = int(now.timestamp())
    keys = sorted({c.email_key for c in changes})  # one lock order for concurrent batches
    state: dict[str, tuple[int, Status, int]] = {}  # key -> (id, status, changed_at)
    for start in range(0, len(keys), _CHUNK):
        query = select(subscribers.c.id, subscribers.c.email_key, subscribers.c.status,
                       subscribers.c.status_changed_at).where(
            subscribers.c.email_key.in_(keys[start : start + _CHUNK]))
        if conn.dialect.name == "postgresql":
            query = query.order_by(subscribers.c.email_key).with_for_update()
        for sid, key, status, changed in conn.execute(query):
            state[key] = (sid, Status(status), int(changed.timestamp()))
    before = {key: status for key, (_, status, _) in state.items()}
    touched: dict[str, tuple[int, Status, int]] = {}
    for change in sorted(changes, key=lambda c: now_s if c.at is None else c.at):
        known = state.get(change.email_key)
        if known is None:
            continue
        sid, current, changed_at = known
        new = decide(current, changed_at, change, now_s)
        if new is None:
            continue
        at = now_s if change.at is None else change.at
        state[change.email_key] = touched[change.email_key] = (sid, new, max(at, changed_at))
    if touched:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == bindparam("b_id"))
            .values(status=bindparam("b_status"), status_changed_at=bindparam("b_at"),
                    updated_at=now),
            [{"b_id": sid, "b_status": status.value,
              "b_at": dt.datetime.fromtimestamp(at, dt.UTC)}
             for sid, status, at in touched.values()],
        )
        record(conn, via, [Entry(sid, "status", before[key].value, status.value)
                           for key, (sid, status, _) in touched.items()], now)
    return len(touched)
