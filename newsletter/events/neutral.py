"""Events in the neutral vocabulary (newsletter.providers.events.ProviderEvent), applied the way
SendGrid's Event Webhook events are: each becomes the `Event` newsletter.events.apply stores,
whose kind says which status it asks for and which engagement counter it bumps (the table
in newsletter.providers.sendgrid.webhook.KINDS). This is the one place a neutral kind gets
its meaning for subscribers:

| neutral                         | applied as     | status       | counter      |
|---------------------------------|----------------|--------------|--------------|
| delivered                       | delivered      |              | delivered    |
| deferred                        | deferred       |              | deferred     |
| bounced, hard                   | bounce         | bounced      | bounces      |
| bounced, soft                   | blocked        |              | blocked      |
| complained                      | spamreport     | complained   | complaints   |
| unsubscribed                    | unsubscribe    | unsubscribed | unsubscribes |
| resubscribed                    | group_resubscribe | active    |              |
| opened, clicked                 | open, click    |              | opens, clicks|
| dropped: invalid or bounced     | dropped_invalid| bounced      | dropped      |
| dropped: complained             | dropped_spam   | complained   | dropped      |
| dropped: unsubscribed           | dropped_unsubscribed | unsubscribed | dropped |
| dropped: other                  | dropped        |              | dropped      |

Event ids are kept apart per provider (`<provider>:<id>`; SendGrid's own stay as they are).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from newsletter.audience.model import email_key
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent
from newsletter.providers.sendgrid.webhook import Event

SIMPLE = {Kind.DELIVERED: "delivered", Kind.DEFERRED: "deferred", Kind.OPENED: "open",
          Kind.CLICKED: "click", Kind.COMPLAINED: "spamreport",
          Kind.UNSUBSCRIBED: "unsubscribe", Kind.RESUBSCRIBED: "group_resubscribe"}
DROPPED = {DropReason.INVALID: "dropped_invalid", DropReason.BOUNCED: "dropped_invalid",
           DropReason.COMPLAINED: "dropped_spam", DropReason.UNSUBSCRIBED: "dropped_unsubscribed",
           DropReason.OTHER: "dropped"}
MAX_ID = 100  # webhook_events.sg_event_id


def applied_kind(event: ProviderEvent) -> str:
    """The kind `event` is stored and applied as."""
    if event.kind == Kind.BOUNCED:
        return "bounce" if event.bounce == Bounce.HARD else "blocked"
    if event.kind == Kind.DROPPED:
        return DROPPED[event.reason or DropReason.OTHER]
    return SIMPLE[event.kind]


def event_id(event: ProviderEvent) -> str:
    """`event`'s id in the event store, unique across providers."""
    if event.provider == "sendgrid":
        return event.event_id
    found = f"{event.provider}:{event.event_id}"
    if len(found) > MAX_ID:
        found = f"{event.provider}:{hashlib.sha256(event.event_id.encode()).hexdigest()}"
    return found[:MAX_ID]


def to_event(event: ProviderEvent) -> Event:
    """The stored form of one neutral event."""
    return Event(event_id(event), applied_kind(event), event.email, email_key(event.email),
                 event.timestamp, event.send_id,
                 url=event.url if event.kind == Kind.CLICKED else None,
                 position=event.position, user_agent=event.user_agent, ip=event.ip,
                 provider_machine=event.provider_machine)


def to_events(events: Iterable[ProviderEvent]) -> list[Event]:
    return [to_event(e) for e in events]
