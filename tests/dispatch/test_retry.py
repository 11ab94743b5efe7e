"""The retry policy: waits that grow with jitter (equal jitter: the upper half of each window),
a provider's reset time honoured, the knobs read from the environment."""

from __future__ import annotations

import random

from newsletter.dispatch.retry import RetryPolicy


def test_backoff_grows_with_jitter_and_honours_a_reset() -> None:
    policy_ = RetryPolicy(base=1, cap=8, attempts=6)
    rng = random.Random(1)
    delays = [policy_.delay(n, rng=rng) for n in range(1, 7)]
    for n, delay in enumerate(delays, start=1):
        window = min(8, 2 ** (n - 1))
        assert window / 2 <= delay <= window
    assert policy_.delay(1, wait=30, rng=rng) >= 30
    env = {"NEWSLETTER_RETRY_BASE": "0.01", "NEWSLETTER_RETRY_ATTEMPTS": "3"}
    assert RetryPolicy.from_env(env) == RetryPolicy(base=0.01, cap=60, attempts=3)
