"""Retrying a hand-over: the policy (exponential backoff with "equal jitter": each wait drawn
from the upper half of a window that doubles per attempt, so a retry always waits at least half
the window, honouring a provider's reset time) and the one loop every hand-over goes through
(`retrying`: a send's batches, dispatch.run, and test sends, dispatch.trial).

The defaults suit real providers; tests shrink them through the environment (declared in
newsletter.core.settings): NEWSLETTER_RETRY_BASE (seconds, default 1), NEWSLETTER_RETRY_CAP
(longest single wait, default 60), NEWSLETTER_RETRY_ATTEMPTS (hand-overs per batch before the
send stops, default 6).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from newsletter.core.settings import ProcessSettings, process
from newsletter.providers.base import BatchResult

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    base: float = ProcessSettings.retry_base
    cap: float = ProcessSettings.retry_cap
    attempts: int = ProcessSettings.retry_attempts

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetryPolicy:
        """The policy the environment sets (default: the process's)."""
        knobs = process(env)
        return cls(base=knobs.retry_base, cap=knobs.retry_cap, attempts=knobs.retry_attempts)

    def delay(self, attempt: int, wait: float | None = None, rng: random.Random | None = None
              ) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A provider's own wait (X-RateLimit-Reset) is honoured in full, plus a little jitter so
        parallel senders do not return at the same instant; otherwise a wait drawn uniformly
        from the upper half of the window base * 2^(attempt-1), capped at `cap`.
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
