"""What a provider's event does to a subscriber: the one policy, beside the status ladder.

Providers say what happened in the closed vocabulary of newsletter.providers.events; this
module decides what it means (the ladder in newsletter.audience.statuses then decides whether
the subscriber's status may move):

- a hard bounce, a drop for an invalid or earlier-bounced address: `bounced`;
- a soft bounce: `bounced` once it is the `SoftBounceLimit.count`-th soft bounce of the address
  within `SoftBounceLimit.days` (3 in 30 by default; `bounces:` in newsletter.yaml sets it),
  else nothing;
- a complaint, a drop for an earlier complaint: `complained`;
- an unsubscribe at the provider, a drop for an earlier unsubscribe: `unsubscribed`;
- a resubscribe at the provider: `active` (the ladder lets it undo only an unsubscribe);
- deliveries, deferrals, opens, clicks and other drops: nothing.

`STORED` names each kind as the event store (`webhook_events.event`) and the per-send
`engagement` counters keep it, in the names SendGrid's events already use there, so reports
and the reputation guard count every provider's events alike.

The bounce mailbox (newsletter.events.mailbox) uses this now; the SendGrid webhook still maps
its events itself (newsletter.providers.sendgrid.webhook.KINDS) until it is normalised into
the same vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.audience.model import Status
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent


@dataclass(frozen=True)
class SoftBounceLimit:
    """`count` soft bounces within `days` retire an address."""

    count: int = 3
    days: int = 30


#: (kind, bounce) -> (the event's name in webhook_events, the engagement counter it bumps)
STORED: dict[tuple[Kind, Bounce | None], tuple[str, str | None]] = {
    (Kind.DELIVERED, None): ("delivered", "delivered"),
    (Kind.DEFERRED, None): ("deferred", "deferred"),
    (Kind.BOUNCED, Bounce.HARD): ("bounce", "bounces"),
    (Kind.BOUNCED, Bounce.SOFT): ("blocked", "blocked"),  # SendGrid's temporary bounce
    (Kind.COMPLAINED, None): ("spamreport", "complaints"),
    (Kind.UNSUBSCRIBED, None): ("unsubscribe", "unsubscribes"),
    (Kind.RESUBSCRIBED, None): ("group_resubscribe", None),
    (Kind.OPENED, None): ("open", "opens"),
    (Kind.CLICKED, None): ("click", "clicks"),
    (Kind.DROPPED, None): ("dropped", "dropped"),
}
#: the stored names of soft bounces, counted toward the limit
SOFT_BOUNCE_EVENTS = ("blocked",)

_DROPS = {DropReason.INVALID: Status.BOUNCED, DropReason.BOUNCED: Status.BOUNCED,
          DropReason.COMPLAINED: Status.COMPLAINED,
          DropReason.UNSUBSCRIBED: Status.UNSUBSCRIBED}
_PLAIN = {Kind.COMPLAINED: Status.COMPLAINED, Kind.UNSUBSCRIBED: Status.UNSUBSCRIBED,
          Kind.RESUBSCRIBED: Status.ACTIVE}


def stored(event: ProviderEvent) -> tuple[str, str | None]:
    """The event's stored name and engagement counter."""
    return STORED[(event.kind, event.bounce)]


def status_for(event: ProviderEvent, soft_bounces: int = 0,
               limit: SoftBounceLimit | None = None) -> Status | None:
    """The status `event` asks for, or None. `soft_bounces`: the address's soft bounces within
    the limit's window, this one included (asked only for a soft bounce)."""
    if event.kind == Kind.BOUNCED:
        if event.bounce == Bounce.HARD:
            return Status.BOUNCED
        return Status.BOUNCED if soft_bounces >= (limit or SoftBounceLimit()).count else None
    if event.kind == Kind.DROPPED:
        return _DROPS.get(event.reason) if event.reason is not None else None
    return _PLAIN.get(event.kind)
