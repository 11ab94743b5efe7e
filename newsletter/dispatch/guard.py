"""The reputation guard: before each batch of a send, its own hard bounces and complaints so far
against `reputation:` in newsletter.yaml (newsletter.core.reputation.judge).

What it reads, as it arrives: the events of every provider's webhook and of the bounce mailbox
that `serve` (or `bounces fetch`) stores, and the servers' 5xx answers of the run itself (SMTP),
counted as the run records them. Per batch that is one primary-key read of the send's
counters and, once the sample is large enough, one index range of its bounces and complaints
(newsletter.db.health); nothing is scanned.

A send is judged from its start, or after `send --resume` from the totals it had then
(Pauses.baseline): a resume acknowledges what was seen, and the guard watches the rest of the
send, again from `min_sample` messages on, with the thresholds newsletter.yaml has now.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from newsletter.core.reputation import Figures, Thresholds, Verdict, judge
from newsletter.db.health import event_counts, handed_over, is_refusal, refusals


class ReputationGuard:
    """The guard of one run of one send (thread-safe: parallel workers share it)."""

    def __init__(self, engine: Engine, send_id: int, thresholds: Thresholds,
                 baseline: Figures | None = None):
        self.engine = engine
        self.send_id = send_id
        self.thresholds = thresholds
        self.baseline = baseline or Figures()
        self.lock = threading.Lock()
        self.warned: set[str] = set()  # kinds of warning given in this run
        with engine.connect() as conn:  # earlier runs' refusals, once; this run's as they come
            self.refused = refusals(conn, [send_id])[send_id]

    def saw(self, state: str, error: str | None) -> None:
        """One outcome of this run, as it is recorded."""
        if is_refusal(state, error):
            with self.lock:
                self.refused += 1

    def figures(self) -> Figures | None:
        """The send's totals now, or None while the stretch since the baseline is shorter
        than the minimum sample (then nothing else is read)."""
        with self.engine.connect() as conn:
            handed = handed_over(conn, [self.send_id]).get(self.send_id, 0)
            if handed - self.baseline.handed < self.thresholds.min_sample:
                return None
            bounces, complaints = event_counts(conn, [self.send_id])[self.send_id]
        with self.lock:
            refused = self.refused
        return Figures(handed, bounces + refused, complaints, refused)

    def new_warnings(self, verdict: Verdict) -> list[str]:
        """The verdict's warnings of a kind (hard bounces, complaints) not given yet."""
        with self.lock:
            fresh = [w for w in verdict.warnings if w.split(" at ", 1)[0] not in self.warned]
            self.warned.update(w.split(" at ", 1)[0] for w in fresh)
        return fresh

    def check(self) -> Verdict:
        """The verdict on the send so far (since its last resume)."""
        totals = self.figures()
        if totals is None:
            return Verdict(Figures())
        return judge(totals.since(self.baseline), self.thresholds)
