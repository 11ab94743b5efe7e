"""What Postmark's and Mailgun's modules share when they read what comes back.

A provider's suppression list in neutral words: `Suppression` (an address, why it is
suppressed, since when), read page by page from a `SuppressionSource`; what each reason does to
a subscriber is decided above the providers (newsletter.events.suppressions). And `id_number`,
for the ids our messages carry back in a provider's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from newsletter.providers.events import DropReason


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    reason: DropReason  # INVALID, BOUNCED, COMPLAINED or UNSUBSCRIBED
    at: int | None = None  # Unix seconds, when the provider says


class SuppressionSource(Protocol):
    """A provider's lists: (list name, one page of entries) in turn, from `since` (Unix
    seconds; 0 for everything) where the provider can filter by time."""

    provider: str

    def pages(self, since: int) -> Iterator[tuple[str, list[Suppression]]]: ...

    def close(self) -> None: ...


def id_number(value: Any) -> int | None:
    """A ledger id carried back as metadata (a string, or a number), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None
