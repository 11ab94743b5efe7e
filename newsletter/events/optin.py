"""Double opt-in and unsubscribe by signed link.

A sign-up is only a request (table `signups`) until the address follows its confirmation link;
then it becomes (or returns to being) an active subscriber, through the status ladder
(newsletter.audience.statuses) as a confirmed consent. A confirmation link works once: the
request records when it was confirmed, and a link issued before that answers "already
confirmed" and changes nothing, so an old link cannot undo a later unsubscribe.

Requests are throttled per address and per client IP, both in the database, so several
`serve` processes share the limits and the form cannot be used to flood an inbox. Callers
show the same answer whatever happened: nothing here tells a visitor whether an address is
subscribed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.audience.erasure import Secrets, restore
from newsletter.audience.history import Source
from newsletter.audience.model import (
    Status,
    clean_name,
    email_key,
    normalize_email,
    normalize_tag,
    utcnow,
)
from newsletter.audience.statuses import Change, apply_changes
from newsletter.audience.subscribers import add_subscriber
from newsletter.audience.welcome import VIA_WEB, request_welcome
from newsletter.db.engine import write_connection
from newsletter.db.tables import signup_throttle, signups
from newsletter.events.apply import dialect_insert

CONFIRM_PURPOSE = "confirm"
CONFIRM_TTL_S = 3 * 24 * 3600


@dataclass(frozen=True)
class Limits:
    """Throttling: per address and per client IP, both kept in the database."""

    address_gap_s: int = 600  # at most one confirmation email per address per 10 minutes
    address_per_day: int = 5  # ...and five a day
    ip_requests: int = 20  # sign-up requests per IP...
    ip_window_s: int = 3600  # ...per hour


class Confirmation(StrEnum):
    """What following a confirmation link did."""

    CONFIRMED = "confirmed"
    ALREADY = "already confirmed"  # the link was used before: nothing changed
    UNKNOWN = "unknown"  # no such request (forgotten since): nothing changed


def allow_client(engine: Engine, client: str, limits: Limits = Limits(),
                 now: dt.datetime | None = None) -> bool:
    """Count one sign-up request from `client` (an IP) in its fixed window; False once the
    window holds more than `limits.ip_requests`. One atomic upsert: concurrent requests in
    several processes are all counted."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=limits.ip_window_s)
    table = signup_throttle
    with write_connection(engine) as conn, conn.begin():
        stmt = dialect_insert(conn, table).values(client=client[:100], window_start=now, hits=1)
        expired = table.c.window_start <= cutoff
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.client],
            set_={"hits": case((expired, 1), else_=table.c.hits + 1),
                  "window_start": case((expired, stmt.excluded.window_start),
                                       else_=table.c.window_start)},
        ).returning(table.c.hits)
        hits = conn.execute(stmt).scalar_one()
    return hits <= limits.ip_requests


def forget_old_clients(engine: Engine, limits: Limits = Limits(),
                       now: dt.datetime | None = None) -> int:
    """Delete throttle rows whose window is over; return how many."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=limits.ip_window_s)
    with write_connection(engine) as conn, conn.begin():
        return conn.execute(delete(signup_throttle).where(
            signup_throttle.c.window_start <= cutoff)).rowcount


def clean_topics(chosen: Iterable[str], allowed: dict[str, str]) -> list[str]:
    """The chosen topics that the publication offers, as tags (others are dropped)."""
    tags = []
    for value in chosen:
        try:
            tag = normalize_tag(value)
        except ValueError:
            continue
        if tag in allowed and tag not in tags:
            tags.append(tag)
    return tags


def request_signup(engine: Engine, email: str, name: str, tags: list[str], *,
                   limits: Limits = Limits(), now: dt.datetime | None = None) -> bool:
    """Record a sign-up request for a normalised `email`; True when a confirmation should be
    sent now, False when this address had one too recently."""
    try:
        return _request_signup(engine, email, name, tags, limits=limits, now=now)
    except IntegrityError:  # a concurrent first request for this address inserted its row
        return _request_signup(engine, email, name, tags, limits=limits, now=now)


def _request_signup(engine: Engine, email: str, name: str, tags: list[str], *,
                    limits: Limits, now: dt.datetime | None) -> bool:
    now = now or utcnow()
    key = email_key(email)
    name = clean_name(name)[0]
    with write_connection(engine) as conn, conn.begin():
        query = select(signups).where(signups.c.email_key == key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            conn.execute(insert(signups).values(
                email_key=key, email=email, name=name, tags=tags, requested_at=now,
                window_start=now, sent_in_window=1, last_sent_at=now))
            return True
        window_start, sent = row.window_start, row.sent_in_window
        if now - window_start >= dt.timedelta(days=1):
            window_start, sent = now, 0
        recent = row.last_sent_at and now - row.last_sent_at < dt.timedelta(
            seconds=limits.address_gap_s)
        if recent or sent >= limits.address_per_day:
            return False
        conn.execute(update(signups).where(signups.c.email_key == key).values(
            email=email, name=name, tags=tags, requested_at=now, window_start=window_start,
            sent_in_window=sent + 1, last_sent_at=now))
        return True


def confirm_signup(engine: Engine, email: str, issued_ms: int = 0,
                   now: dt.datetime | None = None, secrets: Secrets = None, *,
                   welcome: bool = False) -> Confirmation:
    """Follow a confirmation link issued at `issued_ms` (unix ms; 0 for old links): make the
    address an active subscriber with the name and topics of its latest request, recording
    the consent, unless the request was confirmed after the link was issued. The person's own
    confirmation takes an erased address off the erasure list (checked with `secrets`, the
    rotation list), but not with a link issued before the erasure (UNKNOWN). With `welcome`
    (newsletter.yaml has `welcome:`), the same transaction asks for the welcome message
    (newsletter.audience.welcome); a replayed link (ALREADY) asks for nothing."""
    now = now or utcnow()
    key = email_key(email)
    with write_connection(engine) as conn, conn.begin():
        query = select(signups).where(signups.c.email_key == key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            return Confirmation.UNKNOWN
        if row.confirmed_at is not None and row.confirmed_at.timestamp() * 1000 >= issued_ms:
            return Confirmation.ALREADY
        issued = dt.datetime.fromtimestamp(issued_ms / 1000, dt.UTC)
        if not restore(conn, secrets, row.email, issued, now):
            return Confirmation.UNKNOWN
        sub, _ = add_subscriber(conn, row.email, name=row.name or None,
                                tags=list(row.tags or []), source="web",
                                via=Source.CONFIRMATION, secrets=secrets)
        apply_changes(conn, [Change(key, Status.ACTIVE, int(now.timestamp()), confirmed=True)],
                      now, via=Source.CONFIRMATION)
        if welcome:
            request_welcome(conn, sub.id, VIA_WEB, now)
        conn.execute(update(signups).where(signups.c.email_key == key)
                     .values(confirmed_at=now))
    return Confirmation.CONFIRMED


def unsubscribe_address(engine: Engine, email: str) -> None:
    """Unsubscribe the address of a valid unsubscribe token; unknown or already retired
    addresses are left as they are (a repeated unsubscribe is harmless)."""
    try:
        key = email_key(normalize_email(email))
    except ValueError:
        key = email_key(email)
    with write_connection(engine) as conn, conn.begin():
        apply_changes(conn, [Change(key, Status.UNSUBSCRIBED)], via=Source.PAGE)
