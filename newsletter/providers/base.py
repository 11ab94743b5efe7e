"""The provider contract: the fixed steps of a hand-over, the hooks each provider fills, and the
capabilities it declares.

A transport gets a `Mailing` once (`open`) and then `send(items)` calls, each returning one
`Outcome` per item, in order. `send` is the same for every provider:

1. each recipient's address is put on the wire (IDNA A-labels: `on_the_wire`); one that cannot
   be is that recipient's `failed` outcome;
2. `build(items)` (hook): the request for the rest, and the recipients the provider refuses
   before anything leaves (too many personal values, a name it cannot carry...);
3. a request larger than `max_request_bytes` is sent as two (`split`);
4. `post(items, request, tell)` (hook): hand the request over and return the provider's answer;
5. `read(items, answer)` (hook): the answer as one outcome per item.

Outcome states form a closed set:

- `accepted`: the provider took the message (HTTP 2xx, SMTP 250, file renamed into place);
- `failed`: the provider refused this recipient for good (e.g. SMTP 550), or the address or
  name cannot be encoded for it; the reason is in words;
- `deferred`: the provider refused this recipient for now (SMTP 450/452): the send's run tries
  it again later, with back-off, and records it `failed` if it still refuses;
- `retry`: not handed over, try again later (429, 5xx, connection refused...);
- `unknown`: the request left but its answer was lost; it may or may not have been taken.

A provider error that must stop the whole send (bad API key, a 400 naming a problem) is
reported with `BatchResult.stop`; `BatchResult.wait` carries a provider's "retry after".

A transport that hands messages over one at a time (SMTP) says so with `reports_each_outcome`;
its `post` calls `tell(index, outcome)` for each message as soon as the provider answered it,
before it hands over the next, and the caller of `send` hears it through `on_outcome` (with
the index into the items it passed; recipients refused in steps 1-2 are told in their place,
so the next message handed over is always the next one told): the send run records each
outcome at once and commits the next message as in flight, so a crash leaves at most the one
message in flight unknown.

What only some providers can do is declared in `capabilities` (never probed with hasattr):
scheduling a send and cancelling it (`Scheduling`: `create_batch_id`, `cancel`, `undo_window`),
suppression lists (`suppression_source`; `releaser` takes an address off them again), the
events their webhooks (or the bounce mailbox) report back, and telling after a crash which
messages in doubt left (`resolve_unknown`).
"""

from __future__ import annotations

import datetime as dt
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from newsletter.core.errors import NewsletterError
from newsletter.providers.mailing import Item, Mailing, Unsendable, on_the_wire
from newsletter.providers.pacing import Pacer

if TYPE_CHECKING:
    from newsletter.compose.schema import PublicationConfig
    from newsletter.core.settings import Settings
    from newsletter.providers.neutral import Releaser, SuppressionSource

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


@dataclass(frozen=True)
class Request:
    """What `build` made of a batch: the provider's request (`body`: whatever its `post`
    takes), its size in bytes when it has one, and the recipients refused before sending."""

    body: Any = None
    size: int = 0
    refused: dict[int, str] = field(default_factory=dict)  # item key -> why


@dataclass(frozen=True)
class Scheduling:
    """A provider that holds a send until a time (`send_at`) under a batch id it can cancel."""

    provider: str  # its name in messages ("SendGrid")
    max_ahead: dt.timedelta  # how far ahead a send may be scheduled
    cancel_deadline: dt.timedelta  # cancelling stops working this long before the send time
    max_cancelled: int  # batch ids it keeps cancelled or paused at one time

    def check_time(self, when: dt.datetime, now: dt.datetime | None = None) -> None:
        """NewsletterError unless `when` is in the future and within `max_ahead`."""
        now = now or dt.datetime.now(dt.UTC)
        if when <= now:
            raise NewsletterError(f"--at {when:%Y-%m-%dT%H:%MZ} is in the past")
        if when - now > self.max_ahead:
            hours = int(self.max_ahead.total_seconds() // 3600)
            raise NewsletterError(f"--at {when:%Y-%m-%dT%H:%MZ} is more than {hours} hours "
                                  f"ahead; {self.provider} schedules at most {hours} hours in "
                                  "advance")


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do beyond handing messages over, declared by its transport class."""

    #: scheduled sends with batch ids it can cancel (`send --at`, `--undo-window`)
    scheduling: Scheduling | None = None
    #: why it cannot schedule, in words (shown when `--at` or `--undo-window` is asked of it)
    unscheduled: str = ""
    #: suppression lists that `suppressions sync` reads (through `suppression_source`)
    suppression_lists: bool = False
    #: lists a confirmed sign-up takes the address off again (through `releaser`)
    releases: bool = False
    #: what its webhook reports back: open, click, bounce, complaint, unsubscribe
    reports: frozenset[str] = frozenset()
    #: whether its open events say when a machine (not a person) opened the message, so that
    #: people's opens can judge a subject test
    flags_machine_opens: bool = False
    #: what comes back of its sends by mail, to the publication's bounce mailbox (`bounces:`)
    #: when it has one: bounce, complaint
    reports_by_mail: frozenset[str] = frozenset()
    #: how `resolve_unknown` tells whether a message in doubt after a crash left, in words
    #: (empty: it cannot, and the operator decides)
    settles_unknown: str = ""


class Transport(ABC):
    """A way to hand messages over; one module (or package) per provider fills the hooks."""

    name: str = ""
    label: str = ""  # the provider's name in messages ("SendGrid")
    #: what this provider can do beyond sending (see the module's docstring)
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the most items one `send()` call takes
    batch_size: int = 100
    #: how many `send()` calls may run at once (from different threads)
    parallel: int = 1
    #: adapts how many of those may be in flight now (None: all `parallel` of them)
    pacer: Pacer | None = None
    #: where messages end up, for the user (outbox folder, SMTP host, API URL)
    where: str = ""
    #: whether `post` hands items over one at a time, in order, telling each outcome before
    #: it starts the next (see the module's docstring)
    reports_each_outcome: bool = False
    #: a request larger than this is sent as two (None: no limit)
    max_request_bytes: int | None = None
    #: the mailing `open` was given (None before)
    mailing: Mailing | None = None

    def open(self, mailing: Mailing) -> None:
        """Prepare for one mailing (render skeletons, size batches)."""
        self.mailing = mailing
        self.building = threading.Lock()

    def preflight(self) -> None:  # noqa: B027 - optional hook
        """Check credentials and reachability before anything is sent (raise NewsletterError)."""

    # -- the hooks -------------------------------------------------------------------------
    def build(self, items: Sequence[Item]) -> Request:
        """The request for `items` (addresses already on the wire) and the items refused
        before sending. Runs under a lock: one request is built at a time."""
        return Request(items)

    @abstractmethod
    def post(self, items: Sequence[Item], request: Request,
             tell: OutcomeSink | None = None) -> Any:
        """Hand the request over; the provider's answer, for `read`. Never raises: what stops
        a request on its way is part of the answer. A transport with `reports_each_outcome`
        calls `tell(index, outcome)` for each item as it goes (and stops handing over when it
        returns False)."""

    def read(self, items: Sequence[Item], answer: Any) -> BatchResult:
        """The answer as one outcome per item (by default `post` answered with them)."""
        return answer

    # -- the fixed steps -------------------------------------------------------------------
    def send(self, items: Sequence[Item], on_outcome: OutcomeSink | None = None
             ) -> BatchResult:
        """Hand `items` over; never raises (a per-recipient problem is that recipient's
        outcome; only trouble every message would meet sets `stop`). With
        `reports_each_outcome`, `on_outcome` hears every item's outcome in order; the
        returned result still carries one outcome per item."""
        wired, unsendable = _wired(items)
        with self.building:
            request = self.build(wired)
        outcomes = {key: Outcome("failed", error=why)
                    for key, why in (unsendable | request.refused).items()}
        ready = [item for item in wired if item.key not in request.refused]
        teller = (_Teller(items, ready, outcomes, on_outcome)
                  if on_outcome is not None and self.reports_each_outcome else None)
        if teller is not None and not teller.start():
            result = BatchResult.all(ready, Outcome("retry", error="not sent: the send stopped"))
        elif ready:
            result = self.hand_over(ready, request, teller.tell if teller else None)
        else:
            result = BatchResult([])
        outcomes.update(zip((i.key for i in ready), result.outcomes, strict=True))
        return BatchResult([outcomes[i.key] for i in items], stop=result.stop, wait=result.wait,
                           details=result.details)

    def hand_over(self, items: Sequence[Item], request: Request,
                  tell: OutcomeSink | None = None) -> BatchResult:
        """Steps 3-5 for a built request: split it when too large, post it, read the answer."""
        limit = self.max_request_bytes
        if limit is not None and request.size > limit and len(items) > 1:
            return self.split(items)
        return self.read(items, self.post(items, request, tell))

    def split(self, items: Sequence[Item]) -> BatchResult:
        """Send `items` as two requests (too large, or to find the recipient a provider
        refused without naming it); the second half waits while the first is in doubt."""
        half = len(items) // 2
        first = self.send(items[:half])
        if first.stop or any(o.state not in ("accepted", "failed") for o in first.outcomes):
            rest = [Outcome("retry", error="not sent: the first half of a split batch failed")]
            return BatchResult(first.outcomes + rest * (len(items) - half),
                               stop=first.stop, wait=first.wait)
        second = self.send(items[half:])
        return BatchResult(first.outcomes + second.outcomes, stop=second.stop, wait=second.wait)

    def check(self, items: Sequence[Item]) -> dict[int, str]:
        """What `send` would refuse of `items` before handing anything over (key -> why), for
        a dry run: nothing is sent."""
        wired, refused = _wired(items)
        with self.building:
            return refused | self.refusals(wired)

    def refusals(self, items: Sequence[Item]) -> dict[int, str]:
        """What `build` would refuse of `items` (wired), for `check`: by default, build the
        request and see."""
        return self.build(items).refused

    # -- optional steps --------------------------------------------------------------------
    def resolve_unknown(self, items: Sequence[Item]) -> dict[int, bool]:
        """For items left `unknown` by a crash: key -> True (was accepted) / False (was not).

        Keys the transport cannot decide are left out (they stay unknown).
        """
        return {}

    #: what `preview` shows, for --dry-run's file: its name in a sentence and the file's suffix
    preview_kind: tuple[str, str] = ("the message", ".eml")

    def preview(self, item: Item) -> str:
        """The first message as the provider would get it, for --dry-run (`preview_kind`)."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # -- declared capabilities -------------------------------------------------------------
    def create_batch_id(self) -> str:
        """A new batch id for a scheduled send (`capabilities.scheduling`)."""
        raise NewsletterError(f"the {self.name} transport does not schedule sends")

    def cancel(self, batch_id: str) -> None:
        """Cancel every message of a scheduled batch (`capabilities.scheduling`)."""
        raise NewsletterError(f"the {self.name} transport does not schedule sends")

    @classmethod
    def undo_window(cls, config: PublicationConfig) -> str | None:
        """The undo window newsletter.yaml gives new sends (`capabilities.scheduling`)."""
        return None

    @classmethod
    def suppression_source(cls, settings: Settings, config: PublicationConfig
                           ) -> SuppressionSource:
        """The provider's suppression lists (`capabilities.suppression_lists`)."""
        raise NewsletterError(f"the {cls.name} transport has no suppression lists")

    @classmethod
    def releaser(cls, settings: Settings, config: PublicationConfig) -> Releaser | None:
        """The lists a confirmed sign-up is taken off (`capabilities.releases`), or None when
        this provider is not in use for the publication."""
        return None


def _wired(items: Sequence[Item]) -> tuple[list[Item], dict[int, str]]:
    """The items with their addresses on the wire, and those that cannot be (key -> why)."""
    wired, unsendable = [], {}
    for item in items:
        try:
            wired.append(on_the_wire(item))
        except Unsendable as exc:
            unsendable[item.key] = str(exc)
    return wired, unsendable


class _Teller:
    """Passes a `post`'s per-item outcomes on with their index into the items `send` got,
    telling the recipients refused before sending in their place, so that the next item
    handed over is always the next one told."""

    def __init__(self, items: Sequence[Item], ready: Sequence[Item],
                 refused: dict[int, Outcome], sink: OutcomeSink):
        self.sink = sink
        self.index = {item.key: n for n, item in enumerate(items)}
        self.order = [(n, refused.get(item.key)) for n, item in enumerate(items)]
        self.ready = ready
        self.next = 0  # the first position of `items` not told yet

    def _refusals(self) -> bool:
        """Tell the refused items from the next position on, up to the next ready one."""
        while self.next < len(self.order) and self.order[self.next][1] is not None:
            at, outcome = self.order[self.next]
            self.next += 1
            if not self.sink(at, outcome):  # type: ignore[arg-type]
                return False
        return True

    def start(self) -> bool:
        return self._refusals()

    def tell(self, index: int, outcome: Outcome) -> bool:
        at = self.index[self.ready[index].key]
        self.next = max(self.next, at + 1)
        return self.sink(at, outcome) and self._refusals()
