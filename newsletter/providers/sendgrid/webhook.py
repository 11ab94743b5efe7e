"""SendGrid Event Webhook events, normalised into a closed set of kinds.

Each event becomes an `Event` with a status it asks for (or none) and the engagement counter
it bumps (or none). Events that cannot be used (not an object, no id or address, an unknown
type, a timestamp outside [MIN_TIMESTAMP, now + FUTURE_SLACK_S]) are counted as ignored, each
on its own, and never touch the database; the rest of their batch is applied.

`decode_events` reads a verified body one event at a time and stops past MAX_EVENTS, so a body
of millions of tiny items never becomes millions of Python objects.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from newsletter.audience.model import Status, email_key
from newsletter.core.privacy import truncate_ip

#: custom_args keys the dispatch engine sets (SendGrid copies them into every event).
SEND_ARG = "nl_send"

#: Events in one request. SendGrid posts batches of at most 768 KB (a few thousand events).
MAX_EVENTS = 10_000
#: Event times accepted: from 2000-01-01 to a day ahead of our clock.
MIN_TIMESTAMP = 946_684_800
FUTURE_SLACK_S = 86_400

#: Dropped reasons that say the address itself is bad.
INVALID_DROP_REASONS = ("invalid", "bounced address")

#: kind -> (status it asks for, engagement counter it bumps)
KINDS: dict[str, tuple[Status | None, str | None]] = {
    "processed": (None, None),
    "delivered": (None, "delivered"),
    "deferred": (None, "deferred"),
    "open": (None, "opens"),
    "click": (None, "clicks"),
    "bounce": (Status.BOUNCED, "bounces"),
    "blocked": (None, "blocked"),  # a bounce of type "blocked": temporary, status unchanged
    "dropped_invalid": (Status.BOUNCED, "dropped"),
    "dropped_spam": (Status.COMPLAINED, "dropped"),
    "dropped_unsubscribed": (Status.UNSUBSCRIBED, "dropped"),
    "dropped": (None, "dropped"),
    "spamreport": (Status.COMPLAINED, "complaints"),
    "unsubscribe": (Status.UNSUBSCRIBED, "unsubscribes"),
    "group_unsubscribe": (Status.UNSUBSCRIBED, "unsubscribes"),
    "group_resubscribe": (Status.ACTIVE, None),
}


@dataclass(frozen=True, slots=True)
class Event:
    """One usable event."""

    event_id: str
    kind: str
    email: str
    email_key: str
    timestamp: int
    send_id: int | None
    url: str | None = None  # clicks
    position: int | None = None  # clicks: the link's position (newsletter.compose.links), if known
    user_agent: str | None = None
    ip: str | None = None  # already truncated (newsletter.core.privacy)
    provider_machine: bool | None = None  # opens: SendGrid's sg_machine_open

    @property
    def status(self) -> Status | None:
        return KINDS[self.kind][0]

    @property
    def counter(self) -> str | None:
        return KINDS[self.kind][1]


def _kind(raw: dict[str, Any]) -> str | None:
    name = raw.get("event")
    if name == "bounce":
        return "blocked" if str(raw.get("type", "bounce")).lower() == "blocked" else "bounce"
    if name == "dropped":
        reason = str(raw.get("reason") or "").strip().lower()
        if reason in INVALID_DROP_REASONS or "invalid address" in reason:
            return "dropped_invalid"
        if reason == "spam reporting address":
            return "dropped_spam"
        if reason == "unsubscribed address":
            return "dropped_unsubscribed"
        return "dropped"
    return name if isinstance(name, str) and name in KINDS else None


def _send_id(raw: dict[str, Any]) -> int | None:
    value = raw.get(SEND_ARG)
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


def parse_event(raw: Any, now: float | None = None) -> Event | None:
    """An Event from one decoded JSON item, or None when it cannot be used."""
    if not isinstance(raw, dict):
        return None
    event_id, email = raw.get("sg_event_id"), raw.get("email")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 100:
        return None
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return None
    kind = _kind(raw)
    if kind is None:
        return None
    timestamp = raw.get("timestamp")
    if timestamp is None:
        timestamp = 0  # unknown time
    elif not isinstance(timestamp, int) or isinstance(timestamp, bool) or not \
            MIN_TIMESTAMP <= timestamp <= (time.time() if now is None else now) + FUTURE_SLACK_S:
        return None
    email = email.strip()
    url = raw.get("url") if kind == "click" and isinstance(raw.get("url"), str) else None
    agent = raw.get("useragent")
    machine = raw.get("sg_machine_open")
    return Event(event_id, kind, email, email_key(email), timestamp, _send_id(raw),
                 url=url[:4000] if url else None,
                 user_agent=agent[:300] if isinstance(agent, str) and agent else None,
                 ip=truncate_ip(raw.get("ip")) if isinstance(raw.get("ip"), str) else None,
                 provider_machine=machine if isinstance(machine, bool) else None)


class TooManyEvents(ValueError):
    """A webhook body holds more than MAX_EVENTS items."""


_SPACE = re.compile(r"[ \t\n\r]*")


def decode_events(body: bytes, limit: int = MAX_EVENTS) -> list[Any]:
    """The items of a JSON array, decoded one at a time (each by the json module's C scanner);
    TooManyEvents as soon as there are more than `limit`, ValueError when the body is not a
    JSON array (RecursionError for absurdly nested items)."""
    text = body.decode("utf-8")
    scan, space = json.JSONDecoder().scan_once, _SPACE.match
    at = space(text, 0).end()
    if text[at:at + 1] != "[":
        raise ValueError("not a JSON array")
    at = space(text, at + 1).end()
    items: list[Any] = []
    if text[at:at + 1] == "]":
        at += 1
    else:
        while True:
            try:
                item, at = scan(text, at)
            except StopIteration as exc:
                raise ValueError(f"not JSON at character {exc.value}") from None
            items.append(item)
            if len(items) > limit:
                raise TooManyEvents(f"more than {limit:,} events in one request")
            at = space(text, at).end()
            separator = text[at:at + 1]
            at = space(text, at + 1).end()
            if separator == "]":
                break
            if separator != ",":
                raise ValueError("not a JSON array")
    if space(text, at).end() != len(text):
        raise ValueError("text after the JSON array")
    return items


def parse_events(payload: Any, now: float | None = None) -> tuple[list[Event], int]:
    """Usable events of a decoded webhook body, and how many items were ignored."""
    if not isinstance(payload, list):
        raise ValueError("the body is not a JSON array of events")
    now = time.time() if now is None else now
    events = []
    for raw in payload:
        event = parse_event(raw, now)
        if event is not None:
            events.append(event)
    return events, len(payload) - len(events)
