"""The run loop: stream the ledger batch by batch, hand each batch over, record what happened.

Per batch: commit its rows as in flight, call the transport, commit the outcomes. `retry`
outcomes are handed over again after a backoff (honouring the provider's wait), up to the
policy's attempts; then the send stops. A provider's stop (bad key, 400) stops it at once.
Setting the `stop` event (Ctrl-C) ends the run after the batch in flight.

A transport may take several batches at once (`Transport.parallel`, SendGrid: 2): batches are
then delivered by as many worker threads, each with its own ledger transactions, so one
request is being built while another waits for the provider.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from newsletter.dispatch.ledger import Ledger
from newsletter.dispatch.retry import RetryPolicy
from newsletter.providers.base import BatchResult, Transport
from newsletter.providers.mailing import Item

Progress = Callable[[int, int, int], None]  # accepted, failed, unknown (increments)


@dataclass
class RunReport:
    """What one run did and why it ended."""

    accepted: int = 0
    failed: int = 0
    unknown: int = 0
    resolved: int = 0  # unknown rows a transport could settle after a crash
    stopped: str | None = None  # the reason the run ended early, if it did
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)


class Engine:
    def __init__(self, ledger: Ledger, send_id: int, transport: Transport, *,
                 policy: RetryPolicy | None = None, stop: threading.Event | None = None,
                 progress: Progress | None = None):
        self.ledger = ledger
        self.send_id = send_id
        self.transport = transport
        self.policy = policy or RetryPolicy.from_env()
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda a, f, u: None)
        self.report = RunReport()
        self.lock = threading.Lock()

    def settle_unknown(self) -> None:
        """Let the transport decide rows a crash left in flight (the outbox can: files)."""
        size = max(1, self.transport.batch_size)
        for batch in self.ledger.stream(self.send_id, ["unknown"], size):
            decided = self.transport.resolve_unknown(batch.items)
            if not decided:
                return  # this transport cannot tell; they stay unknown
            results = [(key, "accepted" if sent else "retry", None, None)
                       for key, sent in decided.items()]
            self.ledger.record(self.send_id, results)
            self.report.resolved += len(results)

    def run(self) -> RunReport:
        """Send every pending or failed recipient of the send, batch by batch."""
        size = max(1, self.transport.batch_size)
        mailing = getattr(self.transport, "mailing", None)
        attributes = mailing is None or mailing.uses_attributes
        batches = self.ledger.stream(self.send_id, ["pending", "failed"], size,
                                     attributes=attributes)
        workers = max(1, self.transport.parallel)
        if workers == 1:
            for batch in batches:
                if self.stop.is_set():
                    self.report.interrupted = True
                    break
                if not self._deliver(batch.items, batch.failed):
                    break
            return self.report
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
                running.add(pool.submit(self._deliver, batch.items, batch.failed))
            for future in running:
                future.result()
        return self.report

    def _deliver(self, items: list[Item], was_failed: int) -> bool:
        """Hand over one batch, retrying what may be retried; False when the send must stop."""
        attempt = 0
        while items:
            attempt += 1
            batch = self.ledger.mark_in_flight(self.send_id, [i.key for i in items], was_failed,
                                               whole=attempt == 1)
            was_failed = 0
            result = self.transport.send(items)
            retry = self._record(items, result, batch)
            if result.stop:
                with self.lock:
                    self.report.stopped = result.stop
                return False
            if not retry:
                return True
            if attempt >= self.policy.attempts:
                last = next((o.error for o in result.outcomes if o.state == "retry"), "")
                with self.lock:
                    self.report.stopped = (f"gave up after {attempt} attempts; the last answer "
                                           f"was: {last}")
                return False
            if self.stop.wait(self.policy.delay(attempt, result.wait)):
                with self.lock:
                    self.report.interrupted = True
                return False
            items = retry
        return True

    def _record(self, items: list[Item], result: BatchResult, batch: int | None = None
                ) -> list[Item]:
        """Store outcomes; return the items to hand over again."""
        rows, retry = [], []
        counts = {"accepted": 0, "failed": 0, "unknown": 0}
        for item, outcome in zip(items, result.outcomes, strict=True):
            rows.append((item.key, outcome.state, outcome.provider_id, outcome.error))
            if outcome.state == "retry":
                retry.append(item)
            else:
                counts[outcome.state] += 1
        self.ledger.record(self.send_id, rows, batch)
        with self.lock:
            self.report.accepted += counts["accepted"]
            self.report.failed += counts["failed"]
            self.report.unknown += counts["unknown"]
            for item, outcome in zip(items, result.outcomes, strict=True):
                if len(self.report.errors) >= 20:
                    break
                if outcome.error and outcome.state in ("failed", "unknown"):
                    self.report.errors.append(f"{item.recipient.email}: {outcome.error}")
            self.progress(counts["accepted"], counts["failed"], counts["unknown"])
        return retry
