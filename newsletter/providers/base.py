"""The transport interface: hand a batch of personalised messages to a provider.

A transport gets a `Mailing` once and then `send(items)` calls, each returning one `Outcome`
per item, in order. Outcome states form a closed set:

- `accepted`: the provider took the message (HTTP 202, SMTP 250, file renamed into place);
- `failed`: the provider refused this recipient for good (e.g. SMTP 550), or the address or
  name cannot be encoded for it; the reason is in words;
- `deferred`: the provider refused this recipient for now (SMTP 450/452): the send's run tries
  it again later, with back-off, and records it `failed` if it still refuses;
- `retry`: not handed over, try again later (429, 5xx, connection refused...);
- `unknown`: the request left but its answer was lost; it may or may not have been taken.

A provider error that must stop the whole send (bad API key, a 400 naming a problem) is
reported with `BatchResult.stop`; `BatchResult.wait` carries a provider's "retry after".

A transport that hands messages over one at a time (SMTP) says so with `reports_each_outcome`
and calls `on_outcome(index, outcome)` for each message as soon as the provider answered it,
before it hands over the next: the send run records that outcome at once (and commits the next
message as in flight), so a crash leaves at most the one message in flight unknown. Any
provider may do the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.pacing import Pacer

State = Literal["accepted", "failed", "deferred", "retry", "unknown"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one item."""

    state: State
    provider_id: str | None = None
    error: str | None = None


@dataclass
class BatchResult:
    """One outcome per item, plus batch-level instructions from the provider."""

    outcomes: list[Outcome]
    stop: str | None = None  # the provider's message when the whole send must stop
    wait: float | None = None  # seconds the provider asked us to wait before retrying
    details: list[str] = field(default_factory=list)

    @classmethod
    def all(cls, items: Sequence[Item], outcome: Outcome, **kwargs) -> BatchResult:
        return cls([outcome] * len(items), **kwargs)


#: `on_outcome(index, outcome)`: told each message's outcome as it happens; returns False when
#: the transport must hand over nothing more (the rest of the batch then comes back `retry`)
OutcomeSink = Callable[[int, "Outcome"], bool]


class Transport(ABC):
    """A way to hand messages over. Subclasses live in their own modules."""

    name: str = ""
    #: the most items one `send()` call takes
    batch_size: int = 100
    #: how many `send()` calls may run at once (from different threads)
    parallel: int = 1
    #: adapts how many of those may be in flight now (None: all `parallel` of them)
    pacer: Pacer | None = None
    #: where messages end up, for the user (outbox folder, SMTP host, API URL)
    where: str = ""
    #: whether `send()` hands items over one at a time, in order, calling `on_outcome` for
    #: each before it starts the next (see the module's docstring)
    reports_each_outcome: bool = False

    def open(self, mailing: Mailing) -> None:
        """Prepare for one mailing (render skeletons, size batches)."""
        self.mailing = mailing

    def preflight(self) -> None:  # noqa: B027 - optional hook
        """Check credentials and reachability before anything is sent (raise NewsletterError)."""

    @abstractmethod
    def send(self, items: Sequence[Item], on_outcome: OutcomeSink | None = None
             ) -> BatchResult:
        """Hand `items` over; never raises (a per-recipient problem is that recipient's
        outcome; only trouble every message would meet sets `stop`). A transport with
        `reports_each_outcome` calls `on_outcome` for every item it handed over (or tried
        to), in order; the returned result still carries one outcome per item."""

    def resolve_unknown(self, items: Sequence[Item]) -> dict[int, bool]:
        """For items left `unknown` by a crash: key -> True (was accepted) / False (was not).

        Keys the transport cannot decide are left out (they stay unknown).
        """
        return {}

    def preview(self, item: Item) -> str:
        """The first message as the provider would get it, for --dry-run."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
