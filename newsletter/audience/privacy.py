"""A person's data on request, and erasure from the database.

`subscriber_data()` gathers everything the database holds about one person: profile and
consent, sign-up request, tags, attributes, audit trail, the sends they received (their own
ledger rows, as the ledger keeps them), every stored event and the engagement counts per send,
their request for the welcome message and the subject tests whose sample held them.
tests/public/test_export.py compares it with a dump of every table for that person, so a table
added later cannot be left out silently.

`forget()` erases the person in one transaction (newsletter.audience.erasure: subscriber or
not), then makes the database files forget the bytes too: SQLite overwrites deleted content
(`secure_delete`, set on every connection) and its write-ahead log is checkpointed and
truncated; PostgreSQL vacuums the tables involved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from newsletter.audience.erasure import Secrets, erase, spellings
from newsletter.audience.history import history_of
from newsletter.audience.subscribers import get_subscriber
from newsletter.db.engine import purge_freed, write_connection
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import (
    ENGAGEMENT_COUNTERS,
    engagement,
    erased_addresses,
    signups,
    subject_test_people,
    subject_tests,
    subscriber_history,
    subscriber_tags,
    subscribers,
    webhook_events,
    welcome_requests,
)

#: the tables erasure writes to (PostgreSQL vacuums them afterwards)
TOUCHED = (subscribers, subscriber_tags, subscriber_history, signups, webhook_events,
           engagement, send_recipients, sends, erased_addresses)


def _stamp(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _rows(conn: Connection, query: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]


def _signups(conn: Connection, keys: set[str]) -> list[dict[str, Any]]:
    s = signups.c
    return [{"email": r["email"], "name": r["name"], "topics": list(r["tags"] or []),
             "requested": _stamp(r["requested_at"]), "confirmed": _stamp(r["confirmed_at"]),
             "last_confirmation_sent": _stamp(r["last_sent_at"]),
             "confirmations_sent_today": r["sent_in_window"],
             "day_started": _stamp(r["window_start"])}
            for r in _rows(conn, select(signups).where(s.email_key.in_(keys)))]


def _sends(conn: Connection, keys: set[str], subscriber_id: int | None) -> list[dict[str, Any]]:
    r, s = send_recipients.c, sends.c
    own = func.lower(r.email).in_(keys)
    if subscriber_id is not None:
        own = or_(own, r.subscriber_id == subscriber_id)
    query = (select(s.id.label("send"), s.issue, s.subject, s.segment, s.transport,
                    s.created_at, r.email, r.name, r.attributes, r.state, r.batch, r.attempts,
                    r.provider_id, r.last_error, r.updated_at)
             .join(sends, s.id == r.send_id).where(own).order_by(r.id))
    return [{"send": row["send"], "issue": row["issue"], "subject": row["subject"],
             "segment": row["segment"], "transport": row["transport"],
             "started": _stamp(row["created_at"]), "sent_to": row["email"],
             "name": row["name"], "attributes": row["attributes"], "state": row["state"],
             "batch": row["batch"], "attempts": row["attempts"],
             "provider_id": row["provider_id"], "last_error": row["last_error"],
             "updated": _stamp(row["updated_at"])} for row in _rows(conn, query)]


def _events(conn: Connection, keys: set[str]) -> list[dict[str, Any]]:
    w = webhook_events.c
    query = select(webhook_events).where(w.email_key.in_(keys)).order_by(w.occurred_at,
                                                                          w.sg_event_id)
    return [{"id": e["sg_event_id"], "event": e["event"], "address": e["email_key"],
             "send": e["send_id"], "at": _stamp(e["occurred_at"]),
             "received": _stamp(e["received_at"]), "url": e["url"], "link": e["position"],
             "user_agent": e["user_agent"], "ip_network": e["ip"],
             "provider_says_machine": e["provider_machine"], "machine": e["machine"],
             "why_machine": e["reason"]} for e in _rows(conn, query)]


def _engagement(conn: Connection, keys: set[str]) -> list[dict[str, Any]]:
    query = select(engagement).where(engagement.c.email_key.in_(keys)).order_by(
        engagement.c.send_id)
    return [{"send": e["send_id"], "address": e["email_key"],
             **{name: e[name] for name in ENGAGEMENT_COUNTERS},
             "last_event": _stamp(e["last_event_at"])} for e in _rows(conn, query)]


def subscriber_data(conn: Connection, email: str) -> dict[str, Any] | None:
    """Everything held about the subscriber `email` (None if unknown), ready for JSON."""
    sub = get_subscriber(conn, email)
    if sub is None:
        return None
    keys = spellings(sub.email) | spellings(email)
    return {
        "profile": {
            "email": sub.email, "name": sub.name, "status": sub.status.value,
            "source": sub.source, "joined": _stamp(sub.created_at),
            "updated": _stamp(sub.updated_at), "status_changed": _stamp(sub.status_changed_at),
            "paused_until": _stamp(sub.paused_until),
            "consented": _stamp(sub.consented_at),  # the last confirmed sign-up
        },
        "tags": list(sub.tags),
        "attributes": sub.attributes,
        "signup": _signups(conn, keys),
        "history": [{"at": _stamp(e.at), "source": e.source, "field": e.field,
                     "before": e.before, "after": e.after} for e in history_of(conn, sub.id)],
        "sends": _sends(conn, keys, sub.id),
        "events": _events(conn, keys),
        "engagement": _engagement(conn, keys),
        "welcome": _welcome(conn, sub.id),
        "subject_tests": _subject_tests(conn, sub.id),
    }


def _welcome(conn: Connection, subscriber_id: int) -> dict[str, Any] | None:
    """The person's request for the welcome message (newsletter.audience.welcome)."""
    row = conn.execute(select(welcome_requests).where(
        welcome_requests.c.subscriber_id == subscriber_id)).first()
    return {"requested": _stamp(row.requested_at), "via": row.via} if row else None


def _subject_tests(conn: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    """The subject tests whose sample held the person, and the subject they were given."""
    p, t = subject_test_people.c, subject_tests.c
    query = (select(p.test_id, p.arm, t.issue, t.subjects)
             .join(subject_tests, t.id == p.test_id).where(p.subscriber_id == subscriber_id)
             .order_by(p.test_id))
    return [{"test": row.test_id, "issue": row.issue, "arm": row.arm,
             "subject": row.subjects[row.arm] if row.arm < len(row.subjects) else None}
            for row in conn.execute(query)]


@dataclass(frozen=True)
class Forgotten:
    email: str
    subscriber: bool  # whether the address was a subscriber
    ledger_rows: int  # ledger rows kept for the counts, now without the address
    events: int  # events kept for the counts, now anonymous
    signups: int  # sign-up requests deleted
    purged: bool  # whether the database files were rid of the freed bytes at once


def forget(engine: Engine, email: str, secrets: Secrets) -> Forgotten:
    """Erase the person at `email` everywhere in the database (see the module docstring)."""
    with write_connection(engine) as conn, conn.begin():
        done = erase(conn, secrets, email)
    purged = purge_freed(engine, [t.name for t in TOUCHED])
    return Forgotten(email, done.subscriber, done.ledger_rows, done.events, done.signups,
                     purged)
