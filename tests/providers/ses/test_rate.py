"""The SES rate limit: pure decisions with the time passed in, checked against a plain count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from newsletter.providers.ses.rate import RECOVERY_S, RateLimit, RatePacer
from tests.conftest import examples


@hsettings(max_examples=examples(60), deadline=None)
@given(rate=st.sampled_from([1.0, 2.0, 14.0, 25.0, 200.0]),
       gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=300))
def test_no_second_ever_holds_more_than_the_rate(rate: float, gaps: list[float]) -> None:
    """Requests that want to leave at arbitrary times (a thread waking late, several at once)
    leave when `admit` lets them: never more than `rate` within any second."""
    limit = RateLimit(rate)
    now, left = 0.0, []
    for gap in gaps:
        now += gap
        wait = limit.admit(now)
        while wait > 0:
            now += wait
            wait = limit.admit(now)
        left.append(now)
    for first, at in enumerate(left):
        assert sum(1 for t in left[first:] if t - at < 1.0 - 1e-9) <= max(1, int(rate))


@hsettings(max_examples=examples(40), deadline=None)
@given(rate=st.sampled_from([1.0, 14.0, 100.0]), count=st.integers(2, 400))
def test_reservations_space_hand_overs_at_the_rate(rate: float, count: int) -> None:
    """Everyone asking at once is spread out: the n-th reservation waits about n/rate, less
    the small burst allowed."""
    limit = RateLimit(rate)
    waits = [limit.reserve(0.0) for _ in range(count)]
    assert waits == sorted(waits) and waits[0] == 0.0
    burst = max(1.0, rate * 0.1)
    assert abs(waits[-1] - max(0.0, (count - burst) / rate)) < 1.5 / rate


def test_a_throttle_halves_the_rate_which_then_recovers() -> None:
    limit = RateLimit(20.0)
    assert limit.rate(0.0) == 20.0
    limit.throttled(100.0)
    assert limit.rate(100.0) == 10.0
    assert 10.0 < limit.rate(100.0 + RECOVERY_S / 2) < 20.0
    assert limit.rate(100.0 + RECOVERY_S) == 20.0
    limit.throttled(200.0)
    limit.throttled(200.0)  # twice at once: a quarter
    assert limit.rate(200.0) == 5.0
    assert limit.reserve(200.0) >= 1 / 5.0 - 1e-9  # and the next slot waits for it


def test_the_pacer_starts_small_grows_per_accepted_message_and_halves_on_a_throttle() -> None:
    pacer = RatePacer(50, RateLimit(1000.0))
    assert pacer.allowed == 2  # few requests out before the first answer
    for n in range(10):
        pacer.answered(float(n), started=float(n), latency=5.0)  # slow answers do not matter
    assert pacer.allowed == 12
    pacer.answered(20.0, started=19.0, latency=0.1, limited=True)
    assert pacer.allowed == 6
    pacer.answered(20.5, started=18.0, latency=0.1, limited=True)  # sent before: not again
    assert pacer.allowed == 6
    for n in range(100):
        pacer.answered(30.0 + n, started=30.0 + n, latency=0.1)
    assert pacer.allowed == 50
