"""Retry policy: exponential backoff with "equal jitter" (each wait drawn from the upper half
of a window that doubles per attempt, so a retry always waits at least half the window),
honouring a provider's reset time.

The defaults suit real providers; tests shrink them through the environment (declared in
newsletter.core.settings): NEWSLETTER_RETRY_BASE (seconds, default 1), NEWSLETTER_RETRY_CAP
(longest single wait, default 60), NEWSLETTER_RETRY_ATTEMPTS (hand-overs per batch before the
send stops, default 6).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from newsletter.core.settings import ProcessSettings, process


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
