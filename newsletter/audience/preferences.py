"""A subscriber's own choices: topics (tags offered in newsletter.yaml `topics:`), edition
language, and pausing for some weeks. Every change goes into the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection, delete, insert, update

from newsletter.audience.history import Change, Source, record, tag_changes
from newsletter.audience.model import Subscriber, utcnow
from newsletter.audience.subscribers import require_subscriber
from newsletter.db.tables import subscriber_tags, subscribers

#: The pauses a subscriber can choose, in weeks.
PAUSE_WEEKS = (4, 8, 12)
#: The attribute that holds the chosen edition language.
LANGUAGE_ATTRIBUTE = "language"


def _stamp(when: dt.datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") if when else None


def set_topics(conn: Connection, sub: Subscriber, topics: Iterable[str], chosen: Iterable[str],
               via: Source, now: dt.datetime) -> bool:
    """Make `sub`'s topic tags (among `topics`) exactly `chosen`; other tags stay as they are.
    Returns whether anything changed."""
    offered = set(topics)
    want = set(chosen) & offered
    have = set(sub.tags) & offered
    added, removed = want - have, have - want
    if added:
        conn.execute(insert(subscriber_tags),
                     [{"subscriber_id": sub.id, "tag": t} for t in sorted(added)])
    if removed:
        conn.execute(delete(subscriber_tags).where(subscriber_tags.c.subscriber_id == sub.id,
                                                   subscriber_tags.c.tag.in_(removed)))
    record(conn, via, tag_changes(sub.id, added, removed), now)
    return bool(added or removed)


def set_pause(conn: Connection, sub: Subscriber, until: dt.datetime | None, via: Source,
              now: dt.datetime) -> bool:
    """Pause `sub` until `until` (None: no pause). Returns whether anything changed."""
    current = sub.paused_until if sub.paused(now) else None
    if current == until:
        return False
    conn.execute(update(subscribers).where(subscribers.c.id == sub.id)
                 .values(paused_until=until, updated_at=now))
    record(conn, via, [Change(sub.id, "pause", _stamp(current), _stamp(until))], now)
    return True


def set_language(conn: Connection, sub: Subscriber, language: str, via: Source,
                 now: dt.datetime) -> bool:
    """Set the edition language `sub` reads. Returns whether anything changed."""
    before = sub.attributes.get(LANGUAGE_ATTRIBUTE)
    if before == language:
        return False
    conn.execute(update(subscribers).where(subscribers.c.id == sub.id).values(
        attributes={**sub.attributes, LANGUAGE_ATTRIBUTE: language}, updated_at=now))
    record(conn, via, [Change(sub.id, "language", before, language)], now)
    return True


def pause_until(weeks: int, now: dt.datetime | None = None) -> dt.datetime:
    """When a pause of `weeks` weeks from `now` ends (ValueError for a pause not offered)."""
    if weeks not in PAUSE_WEEKS:
        raise ValueError(f"a pause lasts {', '.join(map(str, PAUSE_WEEKS))} weeks")
    return (now or utcnow()) + dt.timedelta(weeks=weeks)


def save_preferences(conn: Connection, email: str, *, topics: Iterable[str],
                     chosen: Iterable[str], language: str | None = None,
                     pause: dt.datetime | None | bool = False, via: Source = Source.PAGE,
                     now: dt.datetime | None = None) -> Subscriber:
    """Apply a subscriber's choices in the caller's transaction and return the result.

    `pause`: False leaves any pause as it is, None ends it, a datetime pauses until then.
    """
    now = now or utcnow()
    sub = require_subscriber(conn, email)
    set_topics(conn, sub, topics, chosen, via, now)
    if language:
        set_language(conn, sub, language, via, now)
    if pause is not False:
        set_pause(conn, sub, pause if isinstance(pause, dt.datetime) else None, via, now)
    return require_subscriber(conn, email)


def stop_topic(conn: Connection, email: str, topic: str, via: Source = Source.PAGE,
               now: dt.datetime | None = None) -> Subscriber:
    """Remove one topic tag (the footer's "Stop receiving <topic>")."""
    now = now or utcnow()
    sub = require_subscriber(conn, email)
    set_topics(conn, sub, [topic], [], via, now)
    return require_subscriber(conn, email)
