"""Retry policy: exponential backoff with full jitter, honouring a provider's reset time.

The defaults suit real providers; tests shrink them through the environment:
NEWSLETTER_RETRY_BASE (seconds, default 1), NEWSLETTER_RETRY_CAP (longest single wait, default
60), NEWSLETTER_RETRY_ATTEMPTS (hand-overs per batch before the send stops, default 6).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 60.0
    attempts: int = 6

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RetryPolicy:
        env = dict(os.environ if env is None else env)
        return cls(
            base=float(env.get("NEWSLETTER_RETRY_BASE") or cls.base),
            cap=float(env.get("NEWSLETTER_RETRY_CAP") or cls.cap),
            attempts=max(1, int(env.get("NEWSLETTER_RETRY_ATTEMPTS") or cls.attempts)),
        )

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
