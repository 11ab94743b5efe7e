"""Double opt-in and unsubscribe by signed link.

A sign-up is only a request (table `signups`) until the address follows its confirmation link;
then it becomes (or returns to being) an active subscriber. Requests are throttled per address
in the database and per client IP in memory, so the form cannot be used to flood an inbox.
Callers show the same answer whatever happened: nothing here tells a visitor whether an address
is subscribed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from newsletter.audience.erasure import clear_erased
from newsletter.audience.history import Source
from newsletter.audience.model import (
    Status,
    email_key,
    normalize_email,
    normalize_tag,
    utcnow,
)
from newsletter.audience.subscribers import add_subscriber
from newsletter.db.engine import write_connection
from newsletter.db.tables import signups
from newsletter.events.statuses import Change, apply_changes

CONFIRM_PURPOSE = "confirm"
CONFIRM_TTL_S = 3 * 24 * 3600


@dataclass(frozen=True)
class Limits:
    """Throttling: per address (database) and per client IP (memory)."""

    address_gap_s: int = 600  # at most one confirmation email per address per 10 minutes
    address_per_day: int = 5  # ...and five a day
    ip_requests: int = 20  # sign-up requests per IP...
    ip_window_s: int = 3600  # ...per hour


class IpWindow:
    """A sliding window of request times per client IP, in memory (one server process)."""

    def __init__(self, limit: int, window_s: int, max_ips: int = 100_000):
        self.limit, self.window, self.max_ips = limit, window_s, max_ips
        self.hits: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def allow(self, ip: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self.lock:
            if len(self.hits) >= self.max_ips:  # forget idle clients before growing further
                self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
            times = self.hits.setdefault(ip, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True


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
    now = now or utcnow()
    key = email_key(email)
    name = " ".join(name.split())[:200]
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


def confirm_signup(engine: Engine, email: str, now: dt.datetime | None = None,
                   secret: str | None = None) -> None:
    """Make the address of a valid confirmation token an active subscriber (with the name and
    topics of its latest request); confirming twice changes nothing. The person's own
    confirmation takes an erased address off the erasure list (checked with `secret`)."""
    now = now or utcnow()
    key = email_key(email)
    with write_connection(engine) as conn, conn.begin():
        row = conn.execute(select(signups).where(signups.c.email_key == key)).first()
        clear_erased(conn, secret, row.email if row is not None else email)
        name = row.name if row is not None else ""
        tags = list(row.tags or []) if row is not None else []
        add_subscriber(conn, row.email if row is not None else email, name=name or None,
                       tags=tags, source="web", resubscribe=True, via=Source.CONFIRMATION)
        if row is not None:
            conn.execute(update(signups).where(signups.c.email_key == key)
                         .values(confirmed_at=now))


def unsubscribe_address(engine: Engine, email: str) -> None:
    """Unsubscribe the address of a valid unsubscribe token; unknown or already retired
    addresses are left as they are (a repeated unsubscribe is harmless)."""
    try:
        key = email_key(normalize_email(email))
    except ValueError:
        key = email_key(email)
    with write_connection(engine) as conn, conn.begin():
        apply_changes(conn, [Change(key, Status.UNSUBSCRIBED)], via=Source.PAGE)
