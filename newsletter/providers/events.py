"""The closed vocabulary of what comes back from a mail service, whichever service it is.

Every way news comes back (a provider's webhook, its suppression list, the bounce mailbox of an
SMTP relay) is parsed by that provider's own module into `ProviderEvent`s with one of the
`Kind`s below, and nothing else. What an event means for a subscriber (a hard bounce retires
the address, a soft one counts toward a threshold, a complaint retires it for good...) is
decided in one place above the providers, never in a provider's module: a provider only says
what happened, in these words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What happened to one message (or to the address it went to)."""

    QUEUED = "queued"  # the provider took it and will deliver it (SendGrid's "processed")
    DELIVERED = "delivered"  # the receiving server took it
    DEFERRED = "deferred"  # the receiving server asked to try later; the provider retries
    BOUNCED = "bounced"  # refused for good (`Bounce.HARD`) or for now (`Bounce.SOFT`)
    COMPLAINED = "complained"  # the recipient marked it as spam (feedback loop, ARF)
    UNSUBSCRIBED = "unsubscribed"  # through the provider's own unsubscribe link or list
    RESUBSCRIBED = "resubscribed"  # the recipient undid an unsubscribe at the provider
    OPENED = "opened"
    CLICKED = "clicked"
    DROPPED = "dropped"  # the provider did not send it at all; `reason` says why


class Bounce(StrEnum):
    HARD = "hard"  # the address does not exist or will never take mail
    SOFT = "soft"  # a full mailbox, a temporary block, a message too large...


class DropReason(StrEnum):
    """Why a provider dropped a message without sending it."""

    INVALID = "invalid"  # the address is malformed or known to be bad
    BOUNCED = "bounced"  # the address bounced before (on the provider's suppression list)
    COMPLAINED = "complained"  # the address complained before
    UNSUBSCRIBED = "unsubscribed"  # the address unsubscribed at the provider before
    OTHER = "other"  # anything else (content, quota, ...): says nothing about the address


# A value, never changed once made (dataclasses.replace makes another); not frozen, because a
# frozen dataclass costs several times as much to make, and webhooks make thousands a second.
@dataclass(slots=True)
class ProviderEvent:
    """One thing that happened, in the neutral vocabulary.

    `event_id` is unique within its `provider` (a provider's own event id, or one derived from
    the message it came in, so that a replayed webhook or a re-read mailbox message is
    recognised). `timestamp` is in unix seconds (0 when the provider gave none). `send_id` and
    `recipient_id` name the send and its ledger row when the provider carried them back (custom
    arguments, a VERP address). `detail` keeps the provider's own words (a DSN's diagnostic
    code, a drop reason), shortened.
    """

    provider: str
    event_id: str
    kind: Kind
    email: str
    timestamp: int = 0
    send_id: int | None = None
    recipient_id: int | None = None
    bounce: Bounce | None = None
    reason: DropReason | None = None
    detail: str | None = None
    url: str | None = None  # clicks
    position: int | None = None  # clicks: the link's position in the email, when known
    user_agent: str | None = None  # opens and clicks
    ip: str | None = None  # opens and clicks, already truncated (newsletter.core.privacy)
    provider_machine: bool | None = None  # opens: the provider's own machine-open flag
    #: unsubscribes: the provider's list (unsubscribe group) the recipient left, when it was
    #: one list and not all mail
    group: str | None = None

    def __post_init__(self) -> None:
        if (self.kind == Kind.BOUNCED) != (self.bounce is not None):
            raise ValueError("a bounce, and only a bounce, says whether it is hard or soft")
        if (self.kind == Kind.DROPPED) != (self.reason is not None):
            raise ValueError("a drop, and only a drop, says why")
