"""Consent at hand-over: who of a batch may no longer be sent the issue, and why.

Right before a batch goes to the transport, one query per batch reads, for its people, the
subscriber's status, their pause (audience.preferences) and the erasure list
(audience.erasure), and whether another send of the issue family reached them meanwhile
(dispatch.ledger.reached). Whoever unsubscribed, bounced, complained, paused or was erased
since the send started, or was reached elsewhere, is recorded `skipped` with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)

from newsletter.audience.erasure import erased_at
from newsletter.audience.model import Status, utcnow
from newsletter.audience.segments import not_paused
from newsletter.db.ledger_tables import send_recipients
from newsletter.db.tables import subscribers
from newsletter.dispatch.ledger.reached import elsewhere, family_send_ids, lists_family
from newsletter.providers.mailing import Item

ERASED = "erased at the person's request"
GONE = "no longer a subscriber (erased)"
REACHED_ELSEWHERE = "reached by another send of this issue or one of its editions"


@dataclass(frozen=True)
class ConsentCheck:
    """What a send checks for each batch: its issue family, its reach policy and start (for
    `elsewhere`), and the secrets (the rotation list) the erasure list is read with. One is
    made for each run; its statement is built once and run for each batch.

    `erasures`: whether the erasure list held anything when the run began. Only then are the
    batch's addresses hashed to look them up: erasing a person deletes their subscriber row
    in the transaction that lists their address, so whoever is erased later is found by the
    missing row alone. `now`: when the run began; a pause that lasts past it is a pause."""

    send_id: int
    family: tuple[str, ...]
    policy: str
    started: dt.datetime
    secrets: tuple[str, ...]
    erasures: bool = True
    now: dt.datetime = field(default_factory=utcnow)

    def _people(self, listed: bool) -> Select:
        """The batch's people who may no longer get it (the batch: the send's pending rows
        between the ids `first` and `last`, bound at each run of the statement; `listed`: the
        family's other sends bound as `family`, see `reached.elsewhere`)."""
        return self._listed if listed else self._subquery

    @cached_property
    def _subquery(self) -> Select:
        return self._statement(None)

    @cached_property
    def _listed(self) -> Select:
        return self._statement(bindparam("family", expanding=True))

    def _statement(self, send_ids: Any) -> Select:
        r, s = send_recipients.c, subscribers.c
        first, last = bindparam("first"), bindparam("last")
        mine = send_recipients.alias("batch")
        among = select(mine.c.subscriber_id).where(
            mine.c.send_id == self.send_id, mine.c.id.between(first, last),
            mine.c.state == "pending")
        return (
            select(r.id.label("key"), s.id.label("subscriber"), s.status, s.paused_until)
            .select_from(send_recipients.outerjoin(subscribers, s.id == r.subscriber_id))
            .where(r.send_id == self.send_id, r.id.between(first, last), r.state == "pending",
                   or_(s.id.is_(None), s.status != Status.ACTIVE.value, ~not_paused(self.now),
                       elsewhere(self.family, self.policy, self.send_id, self.started,
                                 among, send_ids))))

    def others(self, conn: Connection) -> list[int]:
        """The ids of the family's other sends, as `conn` sees them now."""
        return [i for i in family_send_ids(conn, self.family) if i != self.send_id]

    def withdrawn(self, conn: Connection, items: Sequence[Item]) -> dict[int, str]:
        """key -> why, for the items that must not be handed over (one query).

        `items` are rows of the send still `pending`, in id order: the batch is read as the
        pending rows between the first and the last (a batch's rows are contiguous, and its
        retries are its rows still pending), so no list of ids travels with the query."""
        if not items:
            return {}
        keys = {item.key for item in items}
        listed = lists_family(conn)
        bounds: dict[str, Any] = {"first": items[0].key, "last": items[-1].key}
        if listed:
            bounds["family"] = self.others(conn)
        rows = conn.execute(self._people(listed), bounds)
        found: dict[int, str] = {}
        if self.erasures:  # the erasure list, under every secret of the rotation list
            by_email = {item.recipient.email: item.key for item in items}
            found.update({by_email[email]: ERASED
                          for email in erased_at(conn, self.secrets, by_email)})
        for key, subscriber, status, paused in rows:
            if key not in keys:
                continue  # a pending row between the batch's that is not in it (none, usually)
            if subscriber is None:
                found.setdefault(key, GONE)
            elif status != Status.ACTIVE.value:
                found.setdefault(key, f"{status} since the send started")
            elif paused is not None and paused > self.now:
                found.setdefault(key, f"paused until {paused:%Y-%m-%d}")
            else:
                found.setdefault(key, REACHED_ELSEWHERE)
        return found


def preview(conn: Connection, check: ConsentCheck, states: Sequence[str],
            now: dt.datetime | None = None) -> list[tuple[str, int]]:
    """(why, how many) of the send's rows in `states` the hand-over would drop now, for the
    plan (the erasure list aside: an erased person's subscriber row is gone too).

    One statement of two parts: the rows whose subscriber is gone, no longer active or
    paused, by reason; and the others, whom another send of the family reached. Apart, that
    look-up is a semi-join the planner can hash whatever the family's size; inside the `OR`
    of the first part it would be a subplan run for each row."""
    now = now or utcnow()
    r, s = send_recipients.c, subscribers.c
    mine = and_(r.send_id == check.send_id, r.state.in_(states))
    far = elsewhere(check.family, check.policy, check.send_id, check.started, None,
                    check.others(conn) if lists_family(conn) else None)
    why = case((s.id.is_(None), literal("gone")),
               (s.status != Status.ACTIVE.value, s.status),
               else_=literal("paused")).label("why")
    gone = (select(why, func.count())
            .select_from(send_recipients.outerjoin(subscribers, s.id == r.subscriber_id))
            .where(mine, or_(s.id.is_(None), s.status != Status.ACTIVE.value,
                             ~not_paused(now)))
            .group_by(why))
    reached_elsewhere = (
        select(literal("elsewhere"), func.count())
        .select_from(send_recipients.join(subscribers, s.id == r.subscriber_id))
        .where(mine, s.status == Status.ACTIVE.value, not_paused(now), far))
    rows = [(key, n) for key, n in conn.execute(union_all(gone, reached_elsewhere)) if n]
    words = {"gone": GONE, "paused": "paused", "elsewhere": REACHED_ELSEWHERE}
    return sorted(((words.get(key, f"{key} since the send started"), n) for key, n in rows),
                  key=lambda x: (-x[1], x[0]))
