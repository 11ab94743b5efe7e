"""One run of a send: stream the ledger batch by batch, hand each batch over, record outcomes.

Per batch: the hand-over (one transaction: drop whoever may no longer get it, commit the rest
as in flight), the transport, the outcomes. `retry` outcomes (the whole request was not taken)
are handed over again after a backoff (honouring the provider's wait), up to the policy's
attempts; then the send stops. `deferred` outcomes (one recipient refused for now) are tried
again the same way, then recorded `failed` with the provider's words. A provider's stop (bad
key, server gone) stops it at once. Setting the `stop` event (Ctrl-C) ends the run after the
batch in flight. A transport that reports each outcome as it happens (SMTP) has one message
of its batch in flight at a time, each outcome recorded as it comes.

While the run lasts, a heartbeat thread renews the send's lease, also while the run waits out
a back-off; when the lease is lost (another process took it over) the run stops, and no write
of this process lands (each is fenced by the lease token). When the database refuses a write
for longer than the ledger's patience (a lock held elsewhere, a full disk) the run stops too;
outcomes it could not record are kept and written once more at the end (and reported if even
that fails), so a batch handed over never loses an outcome that is known.

Before each batch the reputation guard (dispatch.guard), when the run has one, judges the
send's own hard bounces and complaints so far: past its thresholds the run records the pause
(ledger.pauses), hands nothing more over and ends; at half of them it warns, once per kind of
warning and run.

A transport may take several batches at once (`Transport.parallel`; an HTTP provider: up to
its `max_in_flight`): batches are then delivered by as many worker threads, each with its
own ledger transactions. A transport with a `pacer` (newsletter.providers.pacing: a provider's
adaptive concurrency) decides how many of them may be in flight now: a worker takes a slot
before it hands its batch over and gives it back once the outcome is recorded, so whatever
the limit, each request in flight is one batch of known or unknown fate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from newsletter.core.settings import process
from newsletter.dispatch.guard import ReputationGuard
from newsletter.dispatch.ledger import (
    HEARTBEAT_EVERY,
    ConsentCheck,
    HandOver,
    LeaseLost,
    Ledger,
    LedgerUnavailable,
)
from newsletter.dispatch.ledger.recipients import Result
from newsletter.dispatch.retry import Ended, RetryPolicy, Tried, retrying
from newsletter.providers.base import BatchResult, Outcome, Transport
from newsletter.providers.mailing import Item

#: accepted, failed, unknown, skipped (increments)
Progress = Callable[[int, int, int, int], None]
#: a warning in words (the reputation guard's, at half a threshold)
Warn = Callable[[str], None]

#: outcome states that end a message's hand-over
FINAL = ("accepted", "failed", "unknown")


@dataclass
class RunReport:
    """What one run did and why it ended."""

    accepted: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0  # dropped at the hand-over (consent withdrawn, reached elsewhere)
    resolved: int = 0  # unknown rows a transport could settle after a crash
    stopped: str | None = None  # the reason the run ended early, if it did
    paused: str | None = None  # why the reputation guard paused the send, if it did
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)  # the guard's, each once
    errors: list[str] = field(default_factory=list)
    #: outcomes known but not recorded (the database refused every try); their rows stay
    #: `unknown` in the ledger
    unrecorded: list[tuple[str, str]] = field(default_factory=list)  # (address, state)


@dataclass
class _InFlight:
    """One hand-over attempt's bookkeeping: which items are committed as in flight and which
    outcomes are recorded already (by index into the hand-over's items)."""

    handover: HandOver
    last_try: bool
    marked: set[int] = field(default_factory=set)
    recorded: dict[int, Outcome] = field(default_factory=dict)


class SendRun:
    """Runs one send to the end (or until it must stop) under its lease."""

    def __init__(self, ledger: Ledger, send_id: int, transport: Transport, *,
                 check: ConsentCheck | None = None, policy: RetryPolicy | None = None,
                 stop: threading.Event | None = None, progress: Progress | None = None,
                 guard: ReputationGuard | None = None, warn: Warn | None = None):
        self.ledger = ledger
        self.recipients = ledger.recipients
        self.send_id = send_id
        self.transport = transport
        self.check = check
        self.policy = policy or RetryPolicy.from_env()
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda a, f, u, s: None)
        self.guard = guard
        self.warn = warn or (lambda text: None)
        self.report = RunReport()
        self.lock = threading.Lock()
        self.unrecorded: list[tuple[Result, str]] = []  # (outcome to store, address)

    def settle_unknown(self) -> None:
        """Let the transport decide rows a crash left in flight (the outbox can: files)."""
        size = max(1, self.transport.batch_size)
        for items in self.recipients.stream(self.send_id, ["unknown"], size):
            decided = self.transport.resolve_unknown(items)
            if not decided:
                return  # this transport cannot tell; they stay unknown
            results = [(key, "accepted" if sent else "retry", None, None)
                       for key, sent in decided.items()]
            self.recipients.record(self.send_id, results)
            self.report.resolved += len(results)

    def run(self) -> RunReport:
        """Send every pending recipient of the send, batch by batch, under a heartbeat."""
        if self.transport.pacer is not None:
            self.transport.pacer.stop = self.stop  # Ctrl-C or a lost lease ends its waits
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(done,), name="lease-heartbeat",
                                daemon=True)
        beat.start()
        try:
            self._run()
        except (LeaseLost, LedgerUnavailable) as exc:
            self._stop_with(str(exc))
        finally:
            done.set()
            beat.join()
            self._flush()
        return self.report

    def _heartbeat(self, done: threading.Event) -> None:
        """Renew the lease every HEARTBEAT_EVERY (or NEWSLETTER_HEARTBEAT seconds)."""
        every = process().heartbeat or HEARTBEAT_EVERY.total_seconds()
        while not done.wait(every):
            try:
                self.ledger.sends.beat(self.send_id)
            except LeaseLost as exc:
                self._stop_with(str(exc))
                self.stop.set()
                return
            except Exception:  # noqa: BLE001 - a busy database: the next beat tries again
                continue

    def _stop_with(self, reason: str) -> None:
        with self.lock:
            self.report.stopped = self.report.stopped or reason

    def _flush(self) -> None:
        """Record the outcomes the database refused earlier (once more, with full patience);
        those it still refuses are reported (their rows stay `unknown`)."""
        if not self.unrecorded:
            return
        pending, self.unrecorded = self.unrecorded, []
        try:
            self.recipients.record(self.send_id, [result for result, _ in pending])
        except (LeaseLost, LedgerUnavailable) as exc:
            self.report.unrecorded = [(address, result[1]) for result, address in pending]
            self._stop_with(str(exc))
            with self.lock:
                self.report.stopped = (
                    f"{self.report.stopped}; {len(pending)} outcome"
                    f"{'s' if len(pending) != 1 else ''} known but not recorded (listed above: "
                    "the ledger shows them `unknown`)")

    def _run(self) -> None:
        size = max(1, self.transport.batch_size)
        mailing = self.transport.mailing
        attributes = mailing is None or mailing.uses_attributes
        batches = self.recipients.stream(self.send_id, ["pending"], size, attributes=attributes)
        workers = max(1, self.transport.parallel)
        if workers == 1:
            for batch in batches:
                if self.stop.is_set():
                    self.report.interrupted = True
                    break
                if not self._deliver(batch):
                    break
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="dispatch") as pool:
            running: set[Future[bool]] = set()
            for batch in batches:
                if len(running) >= workers:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    if not all(f.result() for f in done):
                        break
                if self.stop.is_set():
                    self.report.interrupted = True
                    break
                running.add(pool.submit(self._deliver, batch))
            for future in running:
                future.result()

    def _deliver(self, items: list[Item]) -> bool:
        """Hand over one batch, retrying what may be retried; False when the send must stop."""
        try:
            return self._deliver_batch(items)
        except (LeaseLost, LedgerUnavailable) as exc:
            self._stop_with(str(exc))
            self.stop.set()
            return False

    def _deliver_batch(self, items: list[Item]) -> bool:
        ended = retrying(items, self._attempt, self.policy, self.stop)
        if ended.interrupted:
            with self.lock:
                self.report.interrupted = True
        elif ended.reason:
            self._stop_with(ended.reason)
        return ended.ok

    def _attempt(self, items: list[Item], number: int, last: bool) -> Tried[Item] | Ended:
        """One hand-over of `items` under the ledger: what to hand over again."""
        pacer = self.transport.pacer
        if self.guard is not None and not self._guard_allows():
            return Ended(False)  # paused: the guard stopped the run
        if pacer is not None and not pacer.acquire():  # stopped while waiting for a slot
            return Ended(False, interrupted=True)
        try:
            handover = self.recipients.hand_over(
                self.send_id, items, check=self.check, whole=number == 1,
                first_only=self.transport.reports_each_outcome)
            if handover.skipped:
                self._tally(skipped=len(handover.skipped))
            if not handover.items:
                return Ended(True)
            flight = _InFlight(handover, last, set(range(handover.marked)))
            result = self._hand_over(flight)
            again = self._record(flight, result)
        finally:
            if pacer is not None:
                pacer.release()
        if not result.stop and self.stop.is_set() and self.report.stopped:
            return Ended(False)  # the ledger refused a write meanwhile
        return Tried(result, again)

    def _guard_allows(self) -> bool:
        """The reputation guard's verdict before a hand-over: False (the send paused, the run
        stopping) when a rate is over its threshold."""
        assert self.guard is not None
        verdict = self.guard.check()
        for warning in self.guard.new_warnings(verdict):
            with self.lock:
                self.report.warnings.append(warning)
            self.warn(warning)
        if verdict.pause is None:
            return True
        with self.lock:
            first = self.report.paused is None
            self.report.paused = self.report.paused or verdict.pause
        if first:
            self.ledger.pauses.pause(self.send_id, verdict, self.guard.thresholds)
            self._stop_with(f"paused by the reputation guard: {verdict.pause}")
        self.stop.set()
        return False

    def _final(self, outcome: Outcome, flight: _InFlight, stopped: bool = False) -> Outcome:
        """A deferred recipient on the last try (or when the send stops) has failed."""
        if outcome.state == "deferred" and (flight.last_try or stopped):
            return Outcome("failed", error=f"still deferred after {self.policy.attempts} "
                                           f"tries: {outcome.error}")
        return outcome

    def _hand_over(self, flight: _InFlight) -> BatchResult:
        """The transport's answer; a transport that raises after all is a stop, and the
        fate of what it was handed is unknown (it may have left)."""
        items = flight.handover.items
        try:
            if self.transport.reports_each_outcome:
                return self.transport.send(items, lambda i, o: self._on_outcome(flight, i, o))
            return self.transport.send(items)
        except Exception as exc:  # noqa: BLE001 - transports must not raise; contain it
            reason = f"{self.transport.name} transport failed: {type(exc).__name__}: {exc}"
            return BatchResult.all(items, Outcome("unknown", error=reason), stop=reason)

    def _on_outcome(self, flight: _InFlight, index: int, outcome: Outcome) -> bool:
        """Record one message's outcome as it happens and commit the next as in flight;
        False (hand over nothing more) when the ledger cannot be written."""
        items = flight.handover.items
        outcome = self._final(outcome, flight)
        item = items[index]
        after = index + 1
        follow = (items[after] if outcome.state != "retry" and after < len(items)
                  and after not in flight.marked else None)
        row = (item.key, outcome.state, outcome.provider_id, outcome.error)
        try:
            if index not in flight.marked:  # reported out of order: in flight first
                self.recipients.record(self.send_id, [], flight.handover.batch, then=item)
                flight.marked.add(index)
            self.recipients.record(self.send_id, [row], flight.handover.batch, then=follow)
        except LedgerUnavailable as exc:
            self._keep(row, item, exc)
            flight.recorded[index] = outcome
            return False
        except LeaseLost as exc:
            self._stop_with(str(exc))
            self.stop.set()
            flight.recorded[index] = outcome
            return False
        flight.recorded[index] = outcome
        if follow is not None:
            flight.marked.add(after)
        self._count([(item, outcome)])
        return True

    def _keep(self, row: Result, item: Item, exc: LedgerUnavailable) -> None:
        """An outcome the ledger refused: kept for the end of the run; the run stops."""
        with self.lock:
            self.unrecorded.append((row, item.recipient.email))
        self._stop_with(str(exc))
        self.stop.set()

    def _record(self, flight: _InFlight, result: BatchResult) -> list[Item]:
        """Store the outcomes not recorded yet; return the items to hand over again. Items
        never committed as in flight (the transport stopped before them) were not handed
        over: they are pending still, and come back."""
        retry: list[Item] = []
        rows: list[Result] = []
        counted: list[tuple[Item, Outcome]] = []
        for index, (item, given) in enumerate(zip(flight.handover.items, result.outcomes,
                                                  strict=True)):
            outcome = flight.recorded.get(index) or self._final(given, flight, bool(result.stop))
            if outcome.state in ("retry", "deferred"):
                retry.append(item)
            if index in flight.recorded:
                continue
            if index not in flight.marked:
                if outcome.state not in ("retry", "deferred"):
                    retry.append(item)  # never handed over, whatever the transport says
                continue
            rows.append((item.key, outcome.state, outcome.provider_id, outcome.error))
            counted.append((item, outcome))
        if rows:
            try:
                self.recipients.record(self.send_id, rows, flight.handover.batch)
            except LedgerUnavailable as exc:
                for row, (item, _) in zip(rows, counted, strict=True):
                    self._keep(row, item, exc)
                return []
        self._count(counted)
        return retry

    def _count(self, outcomes: list[tuple[Item, Outcome]]) -> None:
        counts = {"accepted": 0, "failed": 0, "unknown": 0}
        for _, outcome in outcomes:
            if outcome.state in counts:
                counts[outcome.state] += 1
            if self.guard is not None:
                self.guard.saw(outcome.state, outcome.error)
        with self.lock:
            for item, outcome in outcomes:
                if len(self.report.errors) >= 20:
                    break
                if outcome.error and outcome.state in ("failed", "unknown"):
                    self.report.errors.append(f"{item.recipient.email}: {outcome.error}")
        self._tally(**counts)

    def _tally(self, accepted: int = 0, failed: int = 0, unknown: int = 0,
               skipped: int = 0) -> None:
        with self.lock:
            self.report.accepted += accepted
            self.report.failed += failed
            self.report.unknown += unknown
            self.report.skipped += skipped
            self.progress(accepted, failed, unknown, skipped)
