"""Engagement in segments and sunsetting: conditions over the event store, counted for people.

Segment conditions (machine-made opens and clicks never count, see
newsletter.events.classify):

- `opened: ISSUE`: a human open of any send of that issue;
- `clicked: ISSUE`, or `clicked: {issue: ISSUE, piece: 2}`: a human click (on a link of that
  piece: `send_links` ties each link position to its piece);
- `engaged_within: 90d`: a human open or click of anything in the last 90 days (`d` days,
  `w` weeks).

`opened` and `clicked` are sets of people from `webhook_events`, computed once per segment
query; `engaged_within` is a test of the subscriber's own row (`last_engaged_at`, kept by
newsletter.audience.engaged), so mixed with tags and attributes it costs no join.

`sunset()` finds active subscribers who joined before the period and have no human engagement
within it (the same column), and tags them (or unsubscribes them through the status ladder's
one API, newsletter.audience.statuses); every change leaves an audit row with the source `sunset`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Text,
    and_,
    exists,
    func,
    insert,
    literal,
    not_,
    null,
    select,
    tuple_,
)

from newsletter.audience.engaged import engaged_since
from newsletter.audience.history import Source
from newsletter.audience.model import Status, normalize_tag, utcnow
from newsletter.audience.statuses import Change, apply_changes
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import (
    UtcDateTime,
    send_links,
    subscriber_history,
    subscriber_tags,
    subscribers,
    webhook_events,
)

CONDITIONS = ("opened", "clicked", "engaged_within")
_PERIOD = re.compile(r"^\s*(\d{1,5})\s*([dw])\s*$")


def parse_period(value: Any) -> dt.timedelta | None:
    """`90d` or `12w` as a timedelta, or None when it is not one."""
    match = _PERIOD.match(str(value)) if isinstance(value, str | int) else None
    if not match:
        return None
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    return dt.timedelta(days=days)


def issue_of(value: Any) -> str | None:
    """An issue slug from YAML (a date or text), or None."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def problem(key: str, arg: Any) -> str | None:
    """What is wrong with an engagement condition, or None when it is fine."""
    if key == "engaged_within":
        return None if parse_period(arg) else (
            "'engaged_within' needs a period like 90d or 12w")
    if key == "clicked" and isinstance(arg, dict):
        piece = arg.get("piece")
        if set(arg) - {"issue", "piece"} or issue_of(arg.get("issue")) is None:
            return "'clicked' takes an issue, or {issue: ISSUE, piece: NUMBER}"
        if piece is not None and (not isinstance(piece, int) or isinstance(piece, bool)
                                  or piece < 0):
            return "'clicked': 'piece' must be a piece number (1, 2, ...; 0 for the chrome)"
        return None
    return None if issue_of(arg) else f"'{key}' needs an issue slug like 2026-11-24"


def _events(key: str, arg: Any) -> list[ColumnElement[bool]]:
    """What the human events of one (validated) `opened` or `clicked` condition satisfy."""
    e = webhook_events.c
    human = e.machine.is_(False)
    if key == "opened":
        return [human, e.event == "open", _of_issue(issue_of(arg) or "")]
    spec = arg if isinstance(arg, dict) else {"issue": arg}
    where = [human, e.event == "click", _of_issue(issue_of(spec["issue"]) or "")]
    if spec.get("piece") is not None:
        links = select(send_links.c.send_id, send_links.c.position).where(
            send_links.c.piece == spec["piece"])
        where.append(tuple_(e.send_id, e.position).in_(links))
    return where


def _of_issue(slug: str) -> ColumnElement[bool]:
    return webhook_events.c.send_id.in_(select(sends.c.id).where(sends.c.issue == slug))


def people(key: str, arg: Any) -> Select:
    """The `email_key`s of the people one (validated) `opened` or `clicked` condition
    selects: a set, for segments to compute once per query (newsletter.audience.segments)."""
    return select(webhook_events.c.email_key).where(*_events(key, arg))


def engaged_within(arg: Any, now: dt.datetime | None = None) -> ColumnElement[bool]:
    """`engaged_within: PERIOD` (validated) as a test of the subscriber's row."""
    return engaged_since((now or utcnow()) - parse_period(arg))  # type: ignore[operator]


@dataclass(frozen=True)
class SunsetResult:
    """How many subscribers a sunset matched, and what it did to them."""

    matched: int
    action: str  # "tag" or "unsubscribe"
    tag: str
    dry_run: bool

    def summary(self) -> str:
        verb = (f"tagged '{self.tag}'" if self.action == "tag" else "unsubscribed")
        if self.dry_run:
            return f"{self.matched:,} subscriber(s) would be {verb} (dry run: nothing changed)."
        return f"{self.matched:,} subscriber(s) {verb}."


def inactive_condition(period: dt.timedelta, now: dt.datetime | None = None) -> ColumnElement[bool]:
    """Active subscribers who joined before `period` ago and have no human engagement since."""
    now = now or utcnow()
    return and_(subscribers.c.status == Status.ACTIVE.value,
                subscribers.c.created_at < now - period, not_(engaged_since(now - period)))


def sunset(conn: Connection, period: dt.timedelta, *, unsubscribe: bool = False,
           tag: str = "inactive", dry_run: bool = False,
           now: dt.datetime | None = None) -> SunsetResult:
    """Tag (or unsubscribe) the inactive subscribers, inside the caller's transaction, with an
    audit row for each change."""
    now = now or utcnow()
    tag = normalize_tag(tag)
    where = inactive_condition(period, now)
    if not unsubscribe:  # those already tagged are not counted twice
        where = and_(where, not_(exists().where(subscriber_tags.c.subscriber_id ==
                                                subscribers.c.id, subscriber_tags.c.tag == tag)))
    matched = conn.execute(select(func.count()).select_from(subscribers).where(where)).scalar_one()
    result = SunsetResult(matched, "unsubscribe" if unsubscribe else "tag", tag, dry_run)
    if dry_run or not matched:
        return result
    if unsubscribe:
        keys = conn.execute(select(subscribers.c.email_key).where(where)).scalars().all()
        apply_changes(conn, [Change(key, Status.UNSUBSCRIBED, int(now.timestamp()))
                             for key in keys], now, via=Source.SUNSET)
        return result
    trail = select(subscribers.c.id, literal(now, UtcDateTime()),
                   literal(Source.SUNSET.value, String(32)), literal("tag", String(32)),
                   null(), literal(tag, Text())).where(where)
    conn.execute(insert(subscriber_history).from_select(
        ["subscriber_id", "at", "source", "field", "before", "after"], trail))
    conn.execute(insert(subscriber_tags).from_select(
        ["subscriber_id", "tag"], select(subscribers.c.id, literal(tag, String(100))).where(where)))
    return result
