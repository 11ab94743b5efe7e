"""The status ladder, and the ONE batch API every path uses to change subscriber statuses.

The webhook, the suppression sync, unsubscribe links, confirmed sign-ups and the CLI all call
`apply_changes`; nothing else writes `subscribers.status`. The rules, in one place:

- statuses rank active < unsubscribed < bounced < complained; a retiring change only moves a
  subscriber up that ladder (a bounce never hides a complaint, an unsubscribe never hides a
  bounce);
- a retiring change that happened before the subscriber's last *consent* (a confirmed sign-up,
  `consented_at`) does not retire them: they asked again after it. Import or creation time is
  not consent, so a suppression recorded before an import retires the imported address;
- only consent returns an address to active: a resubscribe (SendGrid's `group_resubscribe`)
  brings back an unsubscribed address; a confirmed sign-up (`confirmed=True`) brings back any
  retired one. Consent older than the suppression changes nothing.

Unknown addresses are left alone.
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
    """`email_key` should become `status`, because of something that happened `at` (unix s).

    `confirmed`: a confirmed sign-up (consent proven through the mailbox itself)."""

    email_key: str
    status: Status
    at: int | None = None  # None: now
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class State:
    """A subscriber's status, when it last changed and when they last consented (unix s)."""

    status: Status
    changed_at: int
    consented_at: int | None = None


def decide(state: State, change: Change, now: int) -> State | None:
    """The state `change` gives a subscriber in `state`, or None when it changes nothing."""
    at = now if change.at is None else change.at
    if change.status == Status.ACTIVE:
        if at < state.changed_at and state.status != Status.ACTIVE:
            return None  # consent older than the suppression
        if state.status == Status.ACTIVE:
            if state.consented_at is not None and state.consented_at >= at:
                return None
            return State(Status.ACTIVE, state.changed_at, at)
        if state.status == Status.UNSUBSCRIBED or change.confirmed:
            return State(Status.ACTIVE, max(at, state.changed_at), at)
        return None
    if RANK[change.status] <= RANK[state.status]:
        return None
    if state.status == Status.ACTIVE and state.consented_at is not None \
            and at < state.consented_at:
        return None
    return State(change.status, max(at, state.changed_at), state.consented_at)


def _seconds(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _time(seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def apply_changes(conn: Connection, changes: Sequence[Change],
                  now: dt.datetime | None = None, via: Source = Source.WEBHOOK) -> int:
    """Apply `changes` in time order inside the caller's transaction, each status change
    recorded in the audit trail as made `via` the given source (every step, so a batch leaves
    the trail its changes leave one at a time: an unsubscribe and a resubscribe are two rows);
    return how many subscribers end with another status (a consent that only records
    `consented_at` is not counted)."""
    if not changes:
        return 0
    now = now or utcnow()
    now_s = int(now.timestamp())
    keys = sorted({c.email_key for c in changes})  # one lock order for concurrent batches
    ids: dict[str, int] = {}
    state: dict[str, State] = {}
    cols = subscribers.c
    for start in range(0, len(keys), _CHUNK):
        query = select(cols.id, cols.email_key, cols.status, cols.status_changed_at,
                       cols.consented_at).where(cols.email_key.in_(keys[start : start + _CHUNK]))
        if conn.dialect.name == "postgresql":
            query = query.order_by(cols.email_key).with_for_update()
        for sid, key, status, changed, consented in conn.execute(query):
            ids[key] = sid
            state[key] = State(Status(status), _seconds(changed) or 0, _seconds(consented))
    before = dict(state)
    steps: list[Entry] = []  # every step on the ladder, as one change at a time records it
    for change in sorted(changes, key=lambda c: now_s if c.at is None else c.at):
        known = state.get(change.email_key)
        if known is None:
            continue
        new = decide(known, change, now_s)
        if new is not None:
            state[change.email_key] = new
            if new.status != known.status:
                steps.append(Entry(ids[change.email_key], "status", known.status.value,
                                   new.status.value))
    touched = {k: s for k, s in state.items() if s != before[k]}
    if touched:
        conn.execute(
            update(subscribers)
            .where(cols.id == bindparam("b_id"))
            .values(status=bindparam("b_status"), status_changed_at=bindparam("b_at"),
                    consented_at=bindparam("b_consented"), updated_at=now),
            [{"b_id": ids[key], "b_status": s.status.value, "b_at": _time(s.changed_at),
              "b_consented": _time(s.consented_at)} for key, s in sorted(touched.items())],
        )
        record(conn, via, steps, now)
    return sum(1 for k, s in touched.items() if s.status != before[k].status)
