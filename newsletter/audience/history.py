"""The audit trail: every change of a subscriber's status, tags or preferences, with what made
it (`Source`), when, and the value before and after.

`record()` is the one place that writes it; every code path that changes a subscriber calls it
inside the same transaction as the change, so the trail and the data never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, insert, select

from newsletter.audience.model import utcnow
from newsletter.db.tables import subscriber_history

_CHUNK = 500


class Source(StrEnum):
    """What made a change."""

    IMPORT = "import"
    CLI = "cli"
    PAGE = "page"  # the subscriber, on the preference or unsubscribe page
    WEBHOOK = "webhook"
    SYNC = "sync"  # provider suppression lists
    CONFIRMATION = "confirmation"  # a confirmed sign-up
    SUNSET = "sunset"  # `subscribers sunset`: inactive subscribers tagged or unsubscribed
    MAILBOX = "mailbox"  # the bounce mailbox (bounces and complaints that came back by mail)


@dataclass(frozen=True, slots=True)
class Change:
    """One field of one subscriber going from `before` to `after` (None: absent)."""

    subscriber_id: int
    field: str  # status, tag, pause, language
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Entry:
    """A recorded change."""

    at: dt.datetime
    source: str
    field: str
    before: str | None
    after: str | None


def rows(source: Source | str, changes: Iterable[Change], at: dt.datetime) -> list[dict]:
    """The `subscriber_history` rows for `changes` (for bulk writers such as the importer;
    everything else calls `record`)."""
    source = str(Source(source))
    return [{"subscriber_id": c.subscriber_id, "at": at, "source": source, "field": c.field,
             "before": None if c.before is None else str(c.before),
             "after": None if c.after is None else str(c.after)}
            for c in changes if c.before != c.after]


def record(conn: Connection, source: Source | str, changes: Iterable[Change],
           at: dt.datetime | None = None) -> int:
    """Append `changes` (inside the caller's transaction); return how many were written."""
    found = rows(source, changes, at or utcnow())
    for start in range(0, len(found), _CHUNK):
        conn.execute(insert(subscriber_history), found[start : start + _CHUNK])
    return len(found)


def tag_changes(subscriber_id: int, added: Iterable[str] = (),
                removed: Iterable[str] = ()) -> list[Change]:
    """Changes for tags added and removed."""
    return ([Change(subscriber_id, "tag", None, t) for t in sorted(added)]
            + [Change(subscriber_id, "tag", t, None) for t in sorted(removed)])


def history_of(conn: Connection, subscriber_id: int) -> list[Entry]:
    """A subscriber's recorded changes, oldest first."""
    h = subscriber_history.c
    rows = conn.execute(select(h.at, h.source, h.field, h.before, h.after)
                        .where(h.subscriber_id == subscriber_id).order_by(h.id))
    return [Entry(*row) for row in rows]
