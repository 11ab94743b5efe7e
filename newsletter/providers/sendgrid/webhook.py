"""SendGrid Event Webhook events, parsed into the neutral vocabulary
(newsletter.providers.events).

`event`: processed (queued), delivered, deferred, open, click; bounce, whose `type` blocked is a
soft bounce and any other a hard one; dropped, whose `reason` says why (an invalid address, an
earlier bounce, spam report or unsubscribe, or anything else); spamreport (complained);
unsubscribe, and group_unsubscribe / group_resubscribe for the unsubscribe group `asm_group_id`.
What each means for a subscriber is decided above (newsletter.events.policy). Our send and
ledger row come back in the custom_args we set (`nl_send`, `nl_recipient`); the event id is
SendGrid's `sg_event_id`, kept as it is.

Events that cannot be used (not an object, no id or address, an unknown type, a timestamp
outside [MIN_TIMESTAMP, now + FUTURE_SLACK_S]) are counted as ignored, each on its own, and never
touch the database; the rest of their batch is applied.

`decode_events` reads a verified body one event at a time and stops past MAX_EVENTS, so a body
of millions of tiny items never becomes millions of Python objects.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from newsletter.core.privacy import truncate_ip
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent
from newsletter.providers.neutral import id_number

PROVIDER = "sendgrid"
#: custom_args keys the dispatch engine sets (SendGrid copies them into every event).
SEND_ARG = "nl_send"
RECIPIENT_ARG = "nl_recipient"

#: Events in one request. SendGrid posts batches of at most 768 KB (a few thousand events).
MAX_EVENTS = 10_000
#: Event times accepted: from 2000-01-01 to a day ahead of our clock.
MIN_TIMESTAMP = 946_684_800
FUTURE_SLACK_S = 86_400

#: Dropped reasons that say the address itself is bad.
INVALID_DROP_REASONS = ("invalid", "invalid address")
#: Dropped reasons that name an earlier event of the address (SendGrid's suppression lists).
LISTED_DROP_REASONS = {"bounced address": DropReason.BOUNCED,
                       "spam reporting address": DropReason.COMPLAINED,
                       "unsubscribed address": DropReason.UNSUBSCRIBED}

_SIMPLE = {"processed": Kind.QUEUED, "delivered": Kind.DELIVERED, "deferred": Kind.DEFERRED,
           "open": Kind.OPENED, "click": Kind.CLICKED, "spamreport": Kind.COMPLAINED,
           "unsubscribe": Kind.UNSUBSCRIBED, "group_unsubscribe": Kind.UNSUBSCRIBED,
           "group_resubscribe": Kind.RESUBSCRIBED}
_GROUPED = ("group_unsubscribe", "group_resubscribe")


def _kind(raw: dict[str, Any]) -> tuple[Kind, Bounce | None, DropReason | None] | None:
    name = raw.get("event")
    if name == "bounce":
        soft = str(raw.get("type", "bounce")).lower() == "blocked"
        return Kind.BOUNCED, Bounce.SOFT if soft else Bounce.HARD, None
    if name == "dropped":
        reason = str(raw.get("reason") or "").strip().lower()
        if reason in INVALID_DROP_REASONS or "invalid address" in reason:
            return Kind.DROPPED, None, DropReason.INVALID
        return Kind.DROPPED, None, LISTED_DROP_REASONS.get(reason, DropReason.OTHER)
    kind = _SIMPLE.get(name) if isinstance(name, str) else None
    return (kind, None, None) if kind is not None else None


def parse_event(raw: Any, now: float | None = None) -> ProviderEvent | None:
    """A ProviderEvent from one decoded JSON item, or None when it cannot be used."""
    if not isinstance(raw, dict):
        return None
    event_id, email = raw.get("sg_event_id"), raw.get("email")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 100:
        return None
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return None
    found = _kind(raw)
    if found is None:
        return None
    kind, bounce, reason = found
    timestamp = raw.get("timestamp")
    if timestamp is None:
        timestamp = 0  # unknown time
    elif not isinstance(timestamp, int) or isinstance(timestamp, bool) or not \
            MIN_TIMESTAMP <= timestamp <= (time.time() if now is None else now) + FUTURE_SLACK_S:
        return None
    url = raw.get("url") if kind == Kind.CLICKED and isinstance(raw.get("url"), str) else None
    agent, machine, said = raw.get("useragent"), raw.get("sg_machine_open"), raw.get("reason")
    grouped = raw.get("event") in _GROUPED
    return ProviderEvent(
        PROVIDER, event_id, kind, email.strip(), timestamp=timestamp,
        send_id=id_number(raw.get(SEND_ARG)), recipient_id=id_number(raw.get(RECIPIENT_ARG)),
        bounce=bounce, reason=reason,
        detail=said[:300] if isinstance(said, str) and said and kind != Kind.CLICKED else None,
        url=url[:4000] if url else None,
        user_agent=agent[:300] if isinstance(agent, str) and agent else None,
        ip=truncate_ip(raw.get("ip")) if isinstance(raw.get("ip"), str) else None,
        provider_machine=machine if isinstance(machine, bool) else None,
        group=str(raw.get("asm_group_id") or "") if grouped else None)


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


def parse_events(payload: Any, now: float | None = None) -> tuple[list[ProviderEvent], int]:
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
