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

A new send's condition (`recipients_of`) names the family's sends by their ids, read in the
transaction that uses it: the planner then sees which sends it reads (none, for an issue's first
send: no condition at all), and on PostgreSQL "not reached" is NOT EXISTS, an anti-join. NOT IN
over a subquery cannot be one there: once the list outgrows `hash_mem` it is a subplan rescanned
for every subscriber, so a send of an issue whose family had already reached a million people
(a welcome round, a send after `--editions`, a new segment) did not finish in 3 minutes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Connection, Select, and_, exists, or_, select

from newsletter.db.ledger_tables import person_send, send_recipients, sends
from newsletter.db.tables import subscribers

#: the states of a row that reached its person
REACHED = ("accepted", "unknown")


def family_sends(family: Iterable[str], besides: int | None = None) -> Select:
    """The ids of every send of the issue family (but `besides`), whatever its state."""
    query = select(sends.c.id).where(sends.c.issue.in_(sorted(set(family))))
    return query if besides is None else query.where(sends.c.id != besides)


def family_send_ids(conn: Connection, family: Iterable[str]) -> list[int]:
    """The ids of every send of the issue family, whatever its state, as `conn` sees them."""
    return list(conn.execute(family_sends(family).order_by(sends.c.id)).scalars())


def reached(family: Iterable[str], *, unknown: bool = True, since: dt.datetime | None = None,
            besides: int | None = None, among: Any = None,
            send_ids: Sequence[int] | BindParameter | None = None) -> Select:
    """The ids of the subscribers the issue `family` (its slugs) reached, as a SELECT.

    - unknown: count `unknown` rows as reached (False: only `accepted` ones, --resend-unknown);
    - since: only rows that became so at or after this time (reached after a send started);
    - besides: leave out the rows of this send (its own hand-overs);
    - among: look only at these subscribers (a SELECT of ids, e.g. those of one batch); the
      look-up then probes ix_send_recipients_person, whatever the size of the family's sends;
    - send_ids: the family's sends, read already (`family_send_ids`), in place of a subquery
      (or an expanding bind parameter that will hold them, but `besides`).
    """
    rows = send_recipients.alias("reach")
    states = REACHED if unknown else ("accepted",)
    of_family: Any
    if send_ids is None:
        of_family = family_sends(family, besides)
    elif isinstance(send_ids, BindParameter):
        of_family = send_ids  # bound later, `besides` left out by the caller
    else:
        of_family = [i for i in send_ids if i != besides]
    # the key of ix_send_recipients_person: with `among`, one batch's people are probed there,
    # send by send; without, the family's rows are read through it, send by send
    query = select(rows.c.subscriber_id).where(
        person_send(rows).in_(of_family), rows.c.state.in_(states),
        rows.c.subscriber_id.is_not(None))
    if since is not None:
        query = query.where(rows.c.updated_at >= since)
    if among is not None:
        query = query.where(rows.c.subscriber_id.in_(among))
    return query


def failed_for_good(family: Iterable[str], send_ids: Sequence[int] | None = None) -> Select:
    """The ids of subscribers a send of the family failed for good (a server refused them);
    `send_ids`: as for `reached`."""
    rows = send_recipients.alias("refused")
    of_family: Any = family_sends(family) if send_ids is None else list(send_ids)
    return select(rows.c.subscriber_id).where(
        person_send(rows).in_(of_family), rows.c.state == "failed",
        rows.c.subscriber_id.is_not(None))


def among_them(conn: Connection, people: Select) -> ColumnElement[bool]:
    """Condition over subscribers: the subscriber is among `people` (a SELECT of subscriber
    ids from the ledger), worded for `conn`'s database. PostgreSQL: a correlated EXISTS, which
    becomes a (anti-)join, or a probe of the subscriber index; `IN` would be a subplan, hashed
    only while the list fits in `hash_mem` and otherwise rescanned for each subscriber.
    SQLite: `IN`, which it answers from one temporary index built from the list."""
    person = subscribers.c.id
    if conn.dialect.name == "sqlite":
        return person.in_(people)
    return exists(people.where(people.selected_columns[0] == person))


def left_out_as_reached(conn: Connection, family: Iterable[str], policy: str,
                        since: dt.datetime | None, send_ids: Sequence[int]
                        ) -> ColumnElement[bool] | None:
    """Condition over subscribers: reached by the family (its sends `send_ids`) in a way
    `policy` leaves out of a new send (see `recipients_of`); None when it leaves nobody out
    for that."""
    if not send_ids or (policy == "again" and since is None):
        return None
    if policy == "again":
        return among_them(conn, reached(family, since=since, send_ids=send_ids))
    return among_them(conn, reached(family, unknown=policy == "once", send_ids=send_ids))


def recipients_of(conn: Connection, family: Iterable[str], members: Any, policy: str,
                  since: dt.datetime | None = None,
                  send_ids: Sequence[int] | None = None) -> ColumnElement[bool]:
    """Who a new send of the family goes to: a WHERE clause over subscribers, for statements
    run on `conn` (the family's sends are read through it, unless given as `send_ids`: use it
    in the same transaction).

    `members`: the segments (and, for one edition, its readers). Policies: `once` leaves out
    everyone the family reached and whoever failed for good in it; `unknown`
    (--resend-unknown) the same but counts only accepted rows; `again` leaves out nobody, or
    with `since`, those reached since then (one edition each in one `send --editions --again`).
    """
    ids = family_send_ids(conn, family) if send_ids is None else send_ids
    gone = left_out_as_reached(conn, family, policy, since, ids)
    if gone is None:
        return members
    if policy == "again":
        return members & ~gone
    return members & ~gone & ~among_them(conn, failed_for_good(family, ids))


def elsewhere(family: Iterable[str], policy: str, send_id: int, started: dt.datetime,
              among: Any, send_ids: Any = None) -> ColumnElement[bool]:
    """Condition over send_recipients: the person was reached by another send of the family
    in a way this send's policy does not override (checked for each batch, right before its
    hand-over). `once`: reached at any time; `unknown`: accepted at any time, or reached
    since this send started; `again`: reached since this send started.

    `send_ids`: the family's sends as a list (or an expanding bind parameter), read in the
    same transaction, in place of a subquery of sends. SQLite needs it: it uses an index on
    an expression (ix_send_recipients_person) for `IN` a list of values, never for `IN` a
    subquery, which it answers by reading the whole ledger instead.

    `among`: the people to look at (a SELECT of subscriber ids: one batch's), found `IN` the
    family's list of them; None: each row's own person, by a correlated EXISTS, for a whole
    send's rows. Put it in an AND (consent.preview does), where PostgreSQL makes it a
    semi-join: an `IN` inside an `OR` is a list read again for each row once it outgrows
    `hash_mem`."""
    person = send_recipients.c.subscriber_id

    def found_in(people: Select) -> ColumnElement[bool]:
        if among is not None:
            return person.in_(people)
        return exists(people.where(people.selected_columns[0] == person))

    forever = found_in(reached(family, unknown=policy == "once", besides=send_id, among=among,
                               send_ids=send_ids))
    since = found_in(reached(family, since=started, besides=send_id, among=among,
                             send_ids=send_ids))
    found = forever if policy == "once" else since if policy == "again" else or_(forever, since)
    if send_ids is not None:
        return found
    # no other send of the family (the usual case): nothing to look up, person by person
    return and_(exists(family_sends(family, send_id)), found)


def lists_family(conn: Connection) -> bool:
    """Whether statements on `conn` name the family's sends as a list (`elsewhere`)."""
    return conn.dialect.name == "sqlite"
