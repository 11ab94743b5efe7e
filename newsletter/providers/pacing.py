"""How many requests a provider gets at once, and when the next one may leave (AIMD).

A `Pacer` keeps a limit on requests in flight, between 1 and `max_in_flight`, and moves it
with the provider's answers:

- **grow** on clean answers: +1 per clean answer until the first decrease (slow start: the
  limit doubles per round trip), then +1/limit per clean answer (one more request per round
  trip: additive increase);
- **shrink** by half on a 429 (multiplicative decrease), and by a quarter when an answer took
  more than twice the fastest recent answer (latency rising: the provider is queueing). One
  decrease per round trip: answers to requests sent before the last decrease do not count
  again;
- **rate-limit headers are honoured**: an answer's `X-RateLimit-Remaining` (less the requests
  already in flight, which the provider may not have counted yet) is a budget of requests
  until its `X-RateLimit-Reset` (a Unix time); when the budget is spent, or a 429 names a
  reset, no request leaves before that reset. Without headers there is no budget;
- never below 1 request in flight, never above `max_in_flight`.

The engine takes a slot (`acquire`) before it commits a batch as in flight and gives it back
(`release`) once the answer is recorded; the transport calls `gate()` right before the
request leaves (it waits for the reset) and `answered()` with what came back. The decisions
are pure (`answered`, `wait_for`, with the time passed in), so they are tested without a
clock; `acquire` and `gate` only wait on them. Setting `stop` ends every wait (they return
False).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: an answer slower than this many times the fastest recent one means latency is rising
SLOW_FACTOR = 2.0
#: ... and slower by at least this much (seconds), so jitter on fast answers is not a signal
SLOW_MARGIN = 0.05
#: how many recent answers the fastest one is taken from
LATENCY_WINDOW = 64
#: the limit a send starts with (what earlier versions kept throughout)
START = 2


class Pacer:
    """An adaptive limit on requests in flight, honouring a provider's rate-limit headers."""

    def __init__(self, max_in_flight: int, *, start: int = START,
                 wall: Callable[[], float] = time.time) -> None:
        self.max_in_flight = max(1, int(max_in_flight))
        self.limit = float(min(self.max_in_flight, max(1, start)))
        self.in_flight = 0
        self.slow_start = True
        self.not_before = 0.0  # wall time before which no request may leave (a reset)
        self.budget: int | None = None  # requests the provider still allows until `reset`
        self.reset = 0.0
        self.last_decrease = float("-inf")  # wall time of the last decrease
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.peak = 0  # the most requests in flight at once (for reports and tests)
        self.wall = wall
        self.stop = threading.Event()
        self._cond = threading.Condition()

    # -- decisions (pure: the time is passed in) ------------------------------------------
    @property
    def allowed(self) -> int:
        """Requests that may be in flight now."""
        return max(1, min(self.max_in_flight, int(self.limit + 1e-9)))

    def wait_for(self, now: float) -> float:
        """Seconds until a request may leave at `now` (0: it may leave now)."""
        if now < self.not_before:
            return self.not_before - now
        if self.budget is not None and self.budget <= 0 and now < self.reset:
            return self.reset - now
        return 0.0

    def sent(self, now: float) -> None:
        """A request leaves at `now`: it spends one of the budget."""
        if self.budget is not None:
            if now >= self.reset:
                self.budget = None  # a new window: unknown until the next answer
            else:
                self.budget -= 1

    def answered(self, now: float, *, started: float, latency: float, limited: bool = False,
                 remaining: int | None = None, reset: float | None = None,
                 clean: bool = True) -> None:
        """Take in one answer: `limited` for a 429, `clean` for an accepted request;
        `remaining` and `reset` from the X-RateLimit headers, when sent."""
        if reset is not None and reset > now:
            if limited or remaining == 0:
                self.not_before = max(self.not_before, reset)
            if remaining is not None:
                others = max(0, self.in_flight - 1)  # sent, maybe not yet counted
                if reset >= self.reset or self.budget is None:
                    self.budget, self.reset = remaining - others, reset
                else:
                    self.budget = min(self.budget, remaining - others)
        fresh = started >= self.last_decrease  # sent after the last decrease
        if limited:
            if fresh:
                self._decrease(0.5, now)
            return
        if not clean:
            return
        fastest = min(self.latencies, default=latency)
        self.latencies.append(latency)
        if latency > SLOW_FACTOR * fastest + SLOW_MARGIN:
            if fresh:
                self._decrease(0.75, now)
            return
        self.limit = min(float(self.max_in_flight),
                         self.limit + (1.0 if self.slow_start else 1.0 / self.allowed))

    def _decrease(self, factor: float, now: float) -> None:
        self.limit = max(1.0, self.limit * factor)
        self.slow_start = False
        self.last_decrease = now

    # -- waiting --------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Wait for a free slot; False when `stop` was set first."""
        with self._cond:
            while self.in_flight >= self.allowed:
                if self.stop.is_set():
                    return False
                self._cond.wait(0.1)
            if self.stop.is_set():
                return False
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return True

    def release(self) -> None:
        """Give a slot back (the answer is recorded)."""
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def gate(self) -> bool:
        """Wait until a request may leave, and count it; False when `stop` was set first."""
        with self._cond:
            while True:
                if self.stop.is_set():
                    return False
                wait = self.wait_for(self.wall())
                if wait <= 0:
                    self.sent(self.wall())
                    return True
                self._cond.wait(min(wait, 0.1))

    def record(self, *, started: float, latency: float, limited: bool = False,
               remaining: int | None = None, reset: float | None = None,
               clean: bool = True) -> None:
        """`answered()` at the current time, under the lock."""
        with self._cond:
            self.answered(self.wall(), started=started, latency=latency, limited=limited,
                          remaining=remaining, reset=reset, clean=clean)
            self._cond.notify_all()
