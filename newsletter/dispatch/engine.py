"""The run loop: stream the ledger batch by batch, hand each batch over, record what happened.

Per batch: commit its rows as in flight, call the transport, commit the outcomes. `retry`
outcomes (the whole request was not taken) are handed over again after a backoff (honouring
the provider's wait), up to the policy's attempts; then the send stops. `deferred` outcomes
(one recipient refused for now) are tried again the same way, then recorded `failed` with the
provider's words. A provider's stop (bad key, server gone) stops it at once. Setting the
`stop` event (Ctrl-C) ends the run after the batch in flight.

While the run lasts, a heartbeat thread renews the send's lease, also while the engine waits
out a back-off; when the lease is lost (another process took it over) the run stops, and no
write of this process lands (each is fenced by the lease token).

A transport may take several batches at once (`Transport.parallel`, SendGrid: up to
`sendgrid.max_in_flight`): batches are then delivered by as many worker threads, each with its
own ledger transactions. A transport with a `pacer` (newsletter.providers.pacing: SendGrid's
adaptive concurrency) decides how many of them may be in flight now: a worker takes a slot
before it commits its batch as in flight and gives it back once the outcome is recorded, so
whatever the limit, each request in flight is one batch of known or unknown fate.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from newsletter.dispatch.ledger import HEARTBEAT_EVERY, LeaseLost, Ledger
from newsletter.dispatch.retry import RetryPolicy
from newsletter.providers.base import BatchResult, Outcome, Transport
from newsletter.providers.mailing import Item

Progress = Callable[[int, int, int], None]  # accepted, failed, unknown (increments)

#: glibc's mallopt parameters: the number of malloc arenas, the size from which memory is mapped
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3


def share_malloc_arenas() -> None:
    """Let worker threads share glibc's malloc arena, and give big blocks back at once.

    Each thread that allocates gets an arena of its own, which keeps its freed request
    bodies (a megabyte each) for reuse, and glibc raises its mmap threshold past that size
    after the first one is freed: with eight workers about 15-25 MB more peak memory. The GIL
    serialises the allocations anyway. A no-op where the C library is not glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, 1)
        libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    except (OSError, AttributeError):
        pass


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
        """Send every pending recipient of the send, batch by batch, under a heartbeat."""
        if self.transport.pacer is not None:
            self.transport.pacer.stop = self.stop  # Ctrl-C or a lost lease ends its waits
        beat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        done = threading.Event()
        self._done = done
        beat.start()
        try:
            self._run()
        except LeaseLost as exc:
            self._stop_with(str(exc))
        finally:
            done.set()
            beat.join()
        return self.report

    def _heartbeat(self) -> None:
        """Renew the lease every HEARTBEAT_EVERY (or NEWSLETTER_HEARTBEAT seconds)."""
        every = float(os.environ.get("NEWSLETTER_HEARTBEAT") or HEARTBEAT_EVERY.total_seconds())
        while not self._done.wait(every):
            try:
                self.ledger.beat(self.send_id)
            except LeaseLost as exc:
                self._stop_with(str(exc))
                self.stop.set()
                return
            except Exception:  # noqa: BLE001 - a busy database: the next beat tries again
                continue

    def _stop_with(self, reason: str) -> None:
        with self.lock:
            self.report.stopped = self.report.stopped or reason

    def _run(self) -> None:
        size = max(1, self.transport.batch_size)
        mailing = getattr(self.transport, "mailing", None)
        attributes = mailing is None or mailing.uses_attributes
        batches = self.ledger.stream(self.send_id, ["pending"], size, attributes=attributes)
        workers = max(1, self.transport.parallel)
        if workers > 1:
            share_malloc_arenas()
        if workers == 1:
            for batch in batches:
                if self.stop.is_set():
                    self.report.interrupted = True
                    break
                if not self._deliver(batch.items, batch.failed):
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
                running.add(pool.submit(self._deliver, batch.items, batch.failed))
            for future in running:
                future.result()

    def _deliver(self, items: list[Item], was_failed: int) -> bool:
        """Hand over one batch, retrying what may be retried; False when the send must stop."""
        try:
            return self._deliver_batch(items, was_failed)
        except LeaseLost as exc:
            self._stop_with(str(exc))
            self.stop.set()
            return False

    def _hand_over(self, items: list[Item]) -> BatchResult:
        """The transport's answer; a transport that raises after all is a stop, and the
        batch's fate is unknown (it may have left)."""
        try:
            result = self.transport.send(items)
        except Exception as exc:  # noqa: BLE001 - transports must not raise; contain it
            reason = f"{self.transport.name} transport failed: {type(exc).__name__}: {exc}"
            return BatchResult.all(items, Outcome("unknown", error=reason), stop=reason)
        return result

    def _deliver_batch(self, items: list[Item], was_failed: int) -> bool:
        attempt = 0
        pacer = self.transport.pacer
        while items:
            attempt += 1
            if pacer is not None and not pacer.acquire():  # stopped while waiting for a slot
                with self.lock:
                    self.report.interrupted = True
                return False
            try:
                batch = self.ledger.mark_in_flight(self.send_id, [i.key for i in items],
                                                   was_failed, whole=attempt == 1)
                was_failed = 0
                result = self._hand_over(items)
                last_try = attempt >= self.policy.attempts
                retry = self._record(items, result, batch, last_try=last_try)
            finally:
                if pacer is not None:
                    pacer.release()
            if result.stop:
                self._stop_with(result.stop)
                return False
            if not retry:
                return True
            if last_try:
                last = next((o.error for o in result.outcomes if o.state == "retry"), "")
                self._stop_with(f"gave up after {attempt} attempts; the last answer was: {last}")
                return False
            if self.stop.wait(self.policy.delay(attempt, result.wait)):
                with self.lock:
                    self.report.interrupted = True
                return False
            items = retry
        return True

    def _record(self, items: list[Item], result: BatchResult, batch: int | None = None, *,
                last_try: bool = False) -> list[Item]:
        """Store outcomes; return the items to hand over again. On the last try a deferred
        recipient is recorded `failed`, with the provider's words."""
        rows, retry = [], []
        counts = {"accepted": 0, "failed": 0, "unknown": 0}
        outcomes = [Outcome("failed", error=f"still deferred after {self.policy.attempts} "
                                            f"tries: {o.error}")
                    if o.state == "deferred" and (last_try or result.stop) else o
                    for o in result.outcomes]
        result = BatchResult(outcomes, stop=result.stop, wait=result.wait)
        for item, outcome in zip(items, result.outcomes, strict=True):
            rows.append((item.key, outcome.state, outcome.provider_id, outcome.error))
            if outcome.state in ("retry", "deferred"):
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
