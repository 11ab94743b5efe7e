"""The one answer to "has this person had this issue?".

An issue and its editions (`translation_of`) form an *issue family*. A person is **reached**
by the family when a send of any of its editions handed the issue over to them: their ledger
row is `accepted`, or `unknown` (the answer was lost: possibly delivered), in a send of any
state, cancelled sends included. A row `cancelled` (the provider cancelled its batch before
delivery), `failed`, `skipped` or `pending` reached nobody.

Every path asks `reached()`: a new send leaves out whoever it names (unless --again; with
--resend-unknown it counts `accepted` rows only), a send of one edition leaves out the readers
of the others, and right before each hand-over a resumed, reopened (--retry-failed) or
--again send drops whoever another send of the family reached meanwhile (`elsewhere()`).
Whoever failed for good in a send of the family (`failed_for_good()`) is left out of a new send
too, until --retry-failed tries them again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select

from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import subscribers

#: the states of a row that reached its person
REACHED = ("accepted", "unknown")


def family_sends(family: Iterable[str], besides: int | None = None) -> Select:
    """The ids of every send of the issue family (but `besides`), whatever its state."""
    query = select(sends.c.id).where(sends.c.issue.in_(sorted(set(family))))
    return query if besides is None else query.where(sends.c.id != besides)


def reached(family: Iterable[str], *, unknown: bool = True, since: dt.datetime | None = None,
            besides: int | None = None, among: Any = None) -> Select:
    """The ids of the subscribers the issue `family` (its slugs) reached, as a SELECT.

    - unknown: count `unknown` rows as reached (False: only `accepted` ones, --resend-unknown);
    - since: only rows that became so at or after this time (reached after a send started);
    - besides: leave out the rows of this send (its own hand-overs);
    - among: look only at these subscribers (a SELECT of ids, e.g. those of one batch); the
      look-up then goes by the subscriber index, whatever the size of the family's sends.
    """
    rows = send_recipients.alias("reach")
    states = REACHED if unknown else ("accepted",)
    of_family = family_sends(family, besides)
    send_id: Any = rows.c.send_id
    if among is not None:
        # `+ 0` keeps SQLite from reading every row of the family's sends by their send
        # index: one batch's people are found by ix_send_recipients_subscriber instead
        send_id = send_id + 0
    query = select(rows.c.subscriber_id).where(
        send_id.in_(of_family), rows.c.state.in_(states), rows.c.subscriber_id.is_not(None))
    if since is not None:
        query = query.where(rows.c.updated_at >= since)
    if among is not None:
        query = query.where(rows.c.subscriber_id.in_(among))
    return query


def failed_for_good(family: Iterable[str]) -> Select:
    """The ids of subscribers a send of the family failed for good (a server refused them)."""
    rows = send_recipients.alias("refused")
    return select(rows.c.subscriber_id).where(
        rows.c.send_id.in_(family_sends(family)), rows.c.state == "failed",
        rows.c.subscriber_id.is_not(None))


def recipients_of(family: Iterable[str], members: Any, policy: str,
                  since: dt.datetime | None = None) -> ColumnElement[bool]:
    """Who a new send of the family goes to: a WHERE clause over subscribers.

    `members`: the segments (and, for one edition, its readers). Policies: `once` leaves out
    everyone the family reached and whoever failed for good in it; `unknown`
    (--resend-unknown) the same but counts only accepted rows; `again` leaves out nobody, or
    with `since`, those reached since then (one edition each in one `send --editions --again`).
    """
    if policy == "again":
        return members if since is None else members & ~subscribers.c.id.in_(
            reached(family, since=since))
    chosen = ~subscribers.c.id.in_(reached(family, unknown=policy == "once"))
    return members & chosen & ~subscribers.c.id.in_(failed_for_good(family))


def elsewhere(family: Iterable[str], policy: str, send_id: int, started: dt.datetime,
              among: Any) -> ColumnElement[bool]:
    """Condition over send_recipients: the person was reached by another send of the family
    in a way this send's policy does not override (checked for each batch, right before its
    hand-over). `once`: reached at any time; `unknown`: accepted at any time, or reached
    since this send started; `again`: reached since this send started."""
    person = send_recipients.c.subscriber_id
    forever = person.in_(reached(family, unknown=policy == "once", besides=send_id, among=among))
    since = person.in_(reached(family, since=started, besides=send_id, among=among))
    found = forever if policy == "once" else since if policy == "again" else or_(forever, since)
    # no other send of the family (the usual case): nothing to look up, person by person
    return and_(exists(family_sends(family, send_id)), found)
