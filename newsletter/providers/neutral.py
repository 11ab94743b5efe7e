"""What the providers' modules share when they read what comes back.

A provider's suppression lists in neutral words: `Suppression` (an address, why it is
suppressed, since when), read page by page (`Page`) from a `SuppressionSource` (a transport
with `capabilities.suppression_lists` opens one: `Transport.suppression_source`); what each
reason does to a subscriber is decided above the providers (newsletter.events.policy); a
`Releaser` takes an address off them again after a confirmed sign-up. And
`id_number`, for the ids our messages carry back in a provider's metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from newsletter.providers.events import DropReason


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    reason: DropReason  # INVALID, BOUNCED, COMPLAINED or UNSUBSCRIBED
    at: int | None = None  # Unix seconds, when the provider says


@dataclass(frozen=True, slots=True)
class Page:
    """One page of one list: its name (for the report), and the mark under which the sync keeps
    how far it read the list (None: a list read whole every time)."""

    list: str
    mark: str | None
    entries: list[Suppression]


#: `since(mark)`: Unix seconds of the newest entry an earlier sync read under `mark` (0: none,
#: or a full sync); the sync keeps every mark it was asked for
Since = Callable[[str], int]


class SuppressionSource(Protocol):
    """A provider's lists, page by page; each from `since(mark)` on where the provider can
    filter by time (a list with nothing new may yield an empty page, or none)."""

    provider: str

    def pages(self, since: Since) -> Iterator[Page]: ...

    def close(self) -> None: ...


class Releaser(Protocol):
    """A provider's lists that take an address off after the person's confirmed sign-up
    (`capabilities.releases`: `Transport.releaser`)."""

    def release(self, email: str) -> list[str]:
        """Take `email` off; the lists it was on (FailedError when the provider cannot be
        asked)."""
        ...

    def close(self) -> None: ...


def id_number(value: Any) -> int | None:
    """A ledger id carried back as metadata (a string, or a number), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None
