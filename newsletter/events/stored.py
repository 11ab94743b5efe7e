"""A provider's event in the form the event store keeps it (`webhook_events`): its stored name
and engagement counter (newsletter.events.policy.STORED), the address's key, and the neutral
event it came from (what the policy reads)."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.audience.model import email_key
from newsletter.events.policy import stored
from newsletter.providers.events import ProviderEvent


@dataclass(slots=True)  # not frozen: a frozen dataclass costs four times as much to make
class Stored:
    """One event as stored; `email` and `email_key` become an anonymous key for an erased
    address (newsletter.events.apply.anonymise_erased, which makes a new one)."""

    event_id: str
    name: str  # webhook_events.event: "open", "click", "bounce", "dropped_invalid"...
    counter: str | None  # the engagement counter it bumps
    email: str
    email_key: str
    timestamp: int
    send_id: int | None
    url: str | None
    position: int | None
    user_agent: str | None
    ip: str | None
    provider_machine: bool | None
    event: ProviderEvent

    @classmethod
    def of(cls, event: ProviderEvent) -> Stored:
        name, counter = stored(event)
        return cls(event.event_id, name, counter, event.email, email_key(event.email),
                   event.timestamp, event.send_id, event.url, event.position, event.user_agent,
                   event.ip, event.provider_machine, event)
