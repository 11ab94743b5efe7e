"""What a provider's event does to a subscriber: the one policy, beside the status ladder.

Providers say what happened in the closed vocabulary of newsletter.providers.events (every
provider's webhook, every suppression list, the bounce mailbox); this module decides what it
means (the ladder in newsletter.audience.statuses then decides whether the subscriber's status
may move):

- a hard bounce, a drop for an invalid or earlier-bounced address: `bounced`;
- a soft bounce: `bounced` once it makes `SoftBounceLimit.count` soft bounces of the address
  within `SoftBounceLimit.days` (3 in 30 by default; `bounces:` in newsletter.yaml sets it),
  whatever order they arrived in (`soft_bounce_counts`), else nothing;
- a complaint, a drop for an earlier complaint: `complained`;
- an unsubscribe at the provider (from all mail or from one of its lists), a drop for an
  earlier unsubscribe: `unsubscribed`;
- a resubscribe at the provider: `active` (the ladder lets it undo only an unsubscribe);
- queued, deliveries, deferrals, opens, clicks and other drops: nothing.

An address on a provider's suppression list is treated as a drop for the list's reason
(`suppressed_status`).

`STORED` names each kind as the event store (`webhook_events.event`) and the per-send
`engagement` counters keep it, in the names the store has always used (SendGrid's), so reports
and the reputation guard count every provider's events alike.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, select

from newsletter.audience.model import Status
from newsletter.db.tables import subscribers, webhook_events
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent

if TYPE_CHECKING:
    from newsletter.compose.schema import BouncesConfig


@dataclass(frozen=True)
class SoftBounceLimit:
    """`count` soft bounces within `days` retire an address."""

    count: int = 3
    days: int = 30

    @classmethod
    def of(cls, config: BouncesConfig | None) -> SoftBounceLimit:
        """The limit newsletter.yaml's `bounces:` sets (the defaults without one)."""
        if config is None:
            return cls()
        return cls(config.soft_bounce_limit, config.soft_bounce_days)


#: (kind, hard/soft or drop reason) -> (the event's name in webhook_events, the engagement
#: counter it bumps)
STORED: dict[tuple[Kind, Bounce | DropReason | None], tuple[str, str | None]] = {
    (Kind.QUEUED, None): ("processed", None),
    (Kind.DELIVERED, None): ("delivered", "delivered"),
    (Kind.DEFERRED, None): ("deferred", "deferred"),
    (Kind.BOUNCED, Bounce.HARD): ("bounce", "bounces"),
    (Kind.BOUNCED, Bounce.SOFT): ("blocked", "blocked"),  # SendGrid's temporary bounce
    (Kind.COMPLAINED, None): ("spamreport", "complaints"),
    (Kind.UNSUBSCRIBED, None): ("unsubscribe", "unsubscribes"),
    (Kind.RESUBSCRIBED, None): ("group_resubscribe", None),
    (Kind.OPENED, None): ("open", "opens"),
    (Kind.CLICKED, None): ("click", "clicks"),
    (Kind.DROPPED, DropReason.INVALID): ("dropped_invalid", "dropped"),
    (Kind.DROPPED, DropReason.BOUNCED): ("dropped_invalid", "dropped"),
    (Kind.DROPPED, DropReason.COMPLAINED): ("dropped_spam", "dropped"),
    (Kind.DROPPED, DropReason.UNSUBSCRIBED): ("dropped_unsubscribed", "dropped"),
    (Kind.DROPPED, DropReason.OTHER): ("dropped", "dropped"),
}
#: an unsubscribe from one of the provider's lists (`ProviderEvent.group`)
GROUP_UNSUBSCRIBE = ("group_unsubscribe", "unsubscribes")
#: the stored names of soft bounces, counted toward the limit
SOFT_BOUNCE_EVENTS = ("blocked",)

_DROPS = {DropReason.INVALID: Status.BOUNCED, DropReason.BOUNCED: Status.BOUNCED,
          DropReason.COMPLAINED: Status.COMPLAINED,
          DropReason.UNSUBSCRIBED: Status.UNSUBSCRIBED}
_PLAIN = {Kind.COMPLAINED: Status.COMPLAINED, Kind.UNSUBSCRIBED: Status.UNSUBSCRIBED,
          Kind.RESUBSCRIBED: Status.ACTIVE}


def stored(event: ProviderEvent) -> tuple[str, str | None]:
    """The event's stored name and engagement counter."""
    if event.kind == Kind.UNSUBSCRIBED and event.group is not None:
        return GROUP_UNSUBSCRIBE
    return STORED[(event.kind, event.bounce or event.reason)]


def is_soft_bounce(event: ProviderEvent) -> bool:
    return event.kind == Kind.BOUNCED and event.bounce == Bounce.SOFT


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


def suppressed_status(reason: DropReason) -> Status | None:
    """The status an address on a provider's suppression list gets, for the list's reason."""
    return _DROPS.get(reason)


def may_retire(event: ProviderEvent) -> bool:
    """Whether `event` may change a status (a soft bounce: once enough of them came)."""
    return status_for(event, soft_bounces=2**31) is not None


def lock_subscribers(conn: Connection, keys: Collection[str]) -> None:
    """PostgreSQL: lock the subscribers' rows (in key order, as the ladder's API does) so two
    transactions counting the same address's soft bounces wait for each other."""
    if keys and conn.dialect.name == "postgresql":
        conn.execute(select(subscribers.c.id).where(subscribers.c.email_key.in_(sorted(keys)))
                     .order_by(subscribers.c.email_key).with_for_update())


def soft_bounce_counts(conn: Connection, bounces: Sequence[tuple[str, int]],
                       limit: SoftBounceLimit) -> list[int]:
    """For each (email key, Unix time) of a soft bounce already stored: the most stored soft
    bounces of the address within any window of the limit's length that holds this one (it
    included), so that bounces arriving out of order count as if they had come in order. One
    query for the whole batch."""
    if not bounces:
        return []
    window = dt.timedelta(days=limit.days)
    first = dt.datetime.fromtimestamp(min(at for _, at in bounces), dt.UTC) - window
    last = dt.datetime.fromtimestamp(max(at for _, at in bounces), dt.UTC) + window
    c = webhook_events.c
    times: dict[str, list[float]] = {}
    for key, occurred in conn.execute(select(c.email_key, c.occurred_at).where(and_(
            c.email_key.in_(sorted({key for key, _ in bounces})),
            c.event.in_(SOFT_BOUNCE_EVENTS), c.occurred_at > first, c.occurred_at < last))):
        times.setdefault(key, []).append(occurred.timestamp())
    seconds = window.total_seconds()
    found = []
    for key, at in bounces:
        ordered = sorted(times.get(key, ()))
        ends = [at, *(t for t in ordered if at < t < at + seconds)]  # windows holding `at`
        found.append(max(bisect_right(ordered, end) - bisect_right(ordered, end - seconds)
                         for end in ends))
    return found
