"""SES's sending rate: at most the account's MaxSendRate messages a second, over all threads.

SES limits messages per second (`GetAccount` -> SendQuota.MaxSendRate), not requests in
flight, so SendGrid's adaptive concurrency (newsletter.providers.pacing) is not the limit
here. `RateLimit` does two things:

- it spaces hand-overs evenly (`reserve`, the generic cell rate algorithm: each one reserves
  the next slot of 1/rate seconds, with a small burst allowed), so that messages are not
  committed as in flight long before their turn;
- right before a request leaves (`admit`), it counts the requests that really left in the
  last second and lets one more go only while they are fewer than the rate: threads that
  woke late cannot catch up in a bunch.

When SES throttles anyway the rate halves, then climbs back linearly to the account's rate
over RECOVERY_S. The decisions are pure (the time is passed in); `take` and `pass_` wait on
them.

`RatePacer` is the pacing.Pacer the send run uses: a slot among the requests allowed in
flight, and then the next sending slot, are taken before a message is committed as in
flight, so a crash leaves as unknown only messages whose turn had come. The number in flight
starts at pacing.START and grows by one with each accepted message (SendGrid's slow start,
kept up: the rate, not the concurrency, is SES's limit), so that an answer that stops the
send (a suspended account, a sender SES refuses) meets few requests already sent; a throttle
halves it. Its `stop` event (Ctrl-C) ends every wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from newsletter.providers.pacing import Pacer

#: seconds for a throttled rate to climb back to the account's rate
RECOVERY_S = 10.0
#: sends that may go at once after a pause, as a share of a second's worth (at least one)
BURST_SHARE = 0.1


class RateLimit:
    """At most `rate` sends a second on average, shared by every thread."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("the sending rate must be positive")
        self.max_rate = float(rate)
        self.clock = clock
        self.next_at = float("-inf")  # the theoretical time of the next send
        self.floor = self.max_rate  # the rate right after the last throttle
        self.throttled_at = float("-inf")
        self.sent: deque[float] = deque()  # when requests left, over the last second
        self._lock = threading.Lock()

    def rate(self, now: float) -> float:
        """The rate allowed at `now` (lower for a while after a throttle)."""
        since = now - self.throttled_at
        if since >= RECOVERY_S:
            return self.max_rate
        return self.floor + (self.max_rate - self.floor) * since / RECOVERY_S

    def reserve(self, now: float) -> float:
        """Reserve the next sending slot; seconds to wait for it (0: send now)."""
        rate = self.rate(now)
        tolerance = max(0.0, (max(1.0, rate * BURST_SHARE) - 1.0) / rate)
        slot = max(now, self.next_at - tolerance)
        self.next_at = max(now, self.next_at) + 1.0 / rate
        return slot - now

    def admit(self, now: float) -> float:
        """Seconds until one more request may leave (0: it leaves now, and is counted)."""
        sent = self.sent
        while sent and sent[0] + 1.0 <= now:
            sent.popleft()
        if len(sent) >= max(1, int(self.rate(now) + 1e-9)):
            return max(sent[0] + 1.0 - now, 1e-6)
        sent.append(now)
        return 0.0

    def throttled(self, now: float) -> None:
        """SES answered "too many requests": halve the rate, then recover."""
        self.floor = max(self.rate(now) / 2, min(self.max_rate, 0.1))
        self.throttled_at = now
        self.next_at = max(self.next_at, now + 1.0 / self.floor)

    def take(self, stop: threading.Event) -> bool:
        """Wait for the next sending slot; False when `stop` was set first."""
        with self._lock:
            wait = self.reserve(self.clock())
        if wait <= 0:
            return not stop.is_set()
        return not stop.wait(wait)

    def pass_(self, stop: threading.Event) -> bool:
        """Wait until a request may leave now; False when `stop` was set first."""
        while True:
            with self._lock:
                wait = self.admit(self.clock())
            if wait <= 0:
                return not stop.is_set()
            if stop.wait(wait):
                return False

    def slow_down(self) -> None:
        with self._lock:
            self.throttled(self.clock())


class RatePacer(Pacer):
    """A slot among `max_in_flight` plus a sending slot of `limit`, before each hand-over."""

    def __init__(self, max_in_flight: int, limit: RateLimit) -> None:
        super().__init__(max_in_flight)
        self.rate_limit = limit
        self._prepaid = threading.local()

    def answered(self, now: float, *, started: float, latency: float, limited: bool = False,
                 remaining: int | None = None, reset: float | None = None,
                 clean: bool = True) -> None:
        """+1 in flight per accepted message, half on a throttle (once per round trip);
        answer times do not matter here."""
        if limited:
            if started >= self.last_decrease:
                self._decrease(0.5, now)
        elif clean:
            self.limit = min(float(self.max_in_flight), self.limit + 1.0)

    def acquire(self) -> bool:
        if not super().acquire():
            return False
        if not self.rate_limit.take(self.stop):
            self.release()
            return False
        self._prepaid.value = True
        return True

    def gate(self) -> bool:
        """Right before a request leaves: the sending slot `acquire` took for this thread
        (or else the next one: a batch's later messages, a send outside the send run), then
        room in the last second."""
        if getattr(self._prepaid, "value", False):
            self._prepaid.value = False
        elif not self.rate_limit.take(self.stop):
            return False
        return self.rate_limit.pass_(self.stop)
