"""A subscriber's data on request, and erasure across the audience and the send ledger.

`subscriber_data()` gathers one person's profile, tags, attributes, audit trail and the sends
they received (their own ledger rows only). `forget()` erases the person in one transaction:
audience rows go (newsletter.audience.erasure), ledger rows stay so every send's counts hold,
but lose the address, name and attributes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select, update

from newsletter.audience.erasure import erase
from newsletter.audience.history import history_of
from newsletter.audience.model import email_key
from newsletter.audience.subscribers import get_subscriber, require_subscriber
from newsletter.db.engine import write_connection
from newsletter.db.ledger_tables import send_recipients, sends


def _stamp(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _own_rows(subscriber_id: int, email: str) -> Any:
    r = send_recipients.c
    return or_(r.subscriber_id == subscriber_id, func.lower(r.email) == email_key(email))


def subscriber_data(conn: Connection, email: str) -> dict[str, Any] | None:
    """Everything held about the subscriber `email` (None if unknown), ready for JSON."""
    sub = get_subscriber(conn, email)
    if sub is None:
        return None
    r, s = send_recipients.c, sends.c
    received = conn.execute(
        select(s.issue, s.subject, s.segment, s.created_at, r.state, r.updated_at)
        .join(sends, s.id == r.send_id).where(_own_rows(sub.id, sub.email)).order_by(r.id))
    return {
        "profile": {
            "email": sub.email, "name": sub.name, "status": sub.status.value,
            "source": sub.source, "joined": _stamp(sub.created_at),
            "updated": _stamp(sub.updated_at), "status_changed": _stamp(sub.status_changed_at),
            "paused_until": _stamp(sub.paused_until),
        },
        "tags": list(sub.tags),
        "attributes": sub.attributes,
        "history": [{"at": _stamp(e.at), "source": e.source, "field": e.field,
                     "before": e.before, "after": e.after} for e in history_of(conn, sub.id)],
        "sends": [{"issue": row.issue, "subject": row.subject, "segment": row.segment,
                   "started": _stamp(row.created_at), "state": row.state,
                   "updated": _stamp(row.updated_at)} for row in received],
    }


@dataclass(frozen=True)
class Forgotten:
    email: str
    ledger_rows: int  # ledger rows kept for the counts, now without the address


def forget(engine: Engine, email: str, secret: str) -> Forgotten:
    """Erase the subscriber `email` (InputError if unknown); see the module docstring."""
    with write_connection(engine) as conn, conn.begin():
        sub = require_subscriber(conn, email)
        anonymous = f"erased-{secrets.token_hex(8)}@erased.invalid"
        rows = conn.execute(
            update(send_recipients).where(_own_rows(sub.id, sub.email))
            .values(subscriber_id=None, email=anonymous, name="", attributes={})).rowcount
        erase(conn, secret, sub.id, sub.email)
    return Forgotten(sub.email, rows or 0)
