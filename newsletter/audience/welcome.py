"""Confirmed sign-ups waiting for the welcome message.

A request is written in the transaction that confirms a sign-up (the confirmation page,
`subscribers add --welcome`); an import never writes one. It only says "this person confirmed
and should be welcomed": whether the welcome reached them is the send ledger's answer
(newsletter.dispatch.ledger.reached, the welcome's issue family), so a person is welcomed once
however often they confirm. Erasing a person deletes their request with their subscriber row
(the foreign key cascades).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, Connection, select

from newsletter.audience.model import utcnow
from newsletter.db.tables import subscribers, welcome_requests

#: how a request was made: the public confirmation page, or staff with the CLI
VIA_WEB, VIA_CLI = "web", "cli"


def request_welcome(conn: Connection, subscriber_id: int, via: str,
                    now: dt.datetime | None = None) -> None:
    """Record that the subscriber confirmed just now (inside the caller's transaction); a
    later confirmation moves the request's time forward. One upsert: two confirmations of
    the same person at once leave one request."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(welcome_requests).values(subscriber_id=subscriber_id,
                                           requested_at=now or utcnow(), via=via)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[welcome_requests.c.subscriber_id],
        set_={"requested_at": stmt.excluded.requested_at, "via": stmt.excluded.via}))


def waiting(since: dt.datetime) -> ColumnElement[bool]:
    """WHERE clause over subscribers: people who asked for the welcome at or after `since`
    (whether it reached them already is for the ledger to say)."""
    return subscribers.c.id.in_(select(welcome_requests.c.subscriber_id).where(
        welcome_requests.c.requested_at >= since))
