"""Retrying a hand-over: the policy (exponential backoff, each wait drawn from the upper half
of a doubling window, honouring a provider's reset time) and the one loop every hand-over goes
through (`retrying`: a send's batches, dispatch.run, and test sends, dispatch.trial).

The defaults suit real providers; tests shrink them through the environment:
NEWSLETTER_RETRY_BASE (seconds, default 1), NEWSLETTER_RETRY_CAP (longest single wait, default
60), NEWSLETTER_RETRY_ATTEMPTS (hand-overs per batch before the send stops, default 6).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from newsletter.core.settings import Tuning
from newsletter.providers.base import BatchResult

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 60.0
    attempts: int = 6

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RetryPolicy:
        """The policy NEWSLETTER_RETRY_BASE, _CAP and _ATTEMPTS set (core.settings.Tuning)."""
        knobs = Tuning.from_env(env)
        return cls(base=knobs.retry_base or cls.base, cap=knobs.retry_cap or cls.cap,
                   attempts=knobs.retry_attempts or cls.attempts)

    def delay(self, attempt: int, wait: float | None = None, rng: random.Random | None = None
              ) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A provider's own wait (X-RateLimit-Reset) is honoured in full, plus a little jitter so
        parallel senders do not return at the same instant; otherwise full jitter over an
        exponentially growing window.
        """
        rng = rng or random
        if wait is not None and wait > 0:
            return wait + rng.uniform(0, min(self.base, 1.0))
        window = min(self.cap, self.base * 2 ** (attempt - 1))
        return rng.uniform(window / 2, window)


@dataclass(frozen=True)
class Tried(Generic[T]):
    """One attempt's answer, and what of it is to be handed over again."""

    result: BatchResult
    again: list[T]


@dataclass(frozen=True)
class Ended:
    """How a hand-over ended: `ok`, or stopped with a `reason` (the provider's stop, giving
    up), or `interrupted` (the stop event, while waiting)."""

    ok: bool
    reason: str | None = None
    interrupted: bool = False


#: `attempt(items, number, last)`: hand `items` over once (attempt `number`, `last` when no
#: other follows); what to hand over again, or how the hand-over ended already
Attempt = Callable[[list[T], int, bool], "Tried[T] | Ended"]


def retrying(items: list[T], attempt: Attempt[T], policy: RetryPolicy,
             stop: threading.Event) -> Ended:
    """Hand `items` over until nothing is left to hand over again: a provider's stop ends it
    at once; otherwise each retry waits `policy.delay` (the provider's own wait honoured), and
    after `policy.attempts` attempts it gives up. Setting `stop` ends a wait early."""
    number = 0
    while items:
        number += 1
        tried = attempt(items, number, number >= policy.attempts)
        if isinstance(tried, Ended):
            return tried
        result = tried.result
        if result.stop:
            return Ended(False, result.stop)
        if not tried.again:
            return Ended(True)
        if number >= policy.attempts:
            last = next((o.error for o in result.outcomes if o.state == "retry"), "")
            return Ended(False, f"gave up after {number} attempts; the last answer was: {last}")
        if stop.wait(policy.delay(number, result.wait)):
            return Ended(False, interrupted=True)
        items = tried.again
    return Ended(True)
