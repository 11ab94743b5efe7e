"""Counting an address's soft bounces (newsletter.events.policy.soft_bounce_counts) against a
plain statement of the rule, on SQLite and PostgreSQL: the most stored soft bounces within any
window of the limit's length that holds the new one, whatever order they arrived in."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert

from newsletter.db.tables import webhook_events
from newsletter.events.policy import SoftBounceLimit, soft_bounce_counts
from tests.conftest import examples

HOUR = 3600
START = 1_790_000_000  # a Unix time in 2026, on the hour
_ids = itertools.count()


def reference(times: list[int], at: int, days: int) -> int:
    """Slide a window of `days` hour by hour across `at`; the fullest one."""
    span = days * 24 * HOUR
    ends = range(at, at + span, HOUR)
    return max(sum(1 for t in times if end - span < t <= end) for end in ends)


def store(engine: Engine, key: str, times: list[int], name: str = "blocked") -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(webhook_events), [
            {"sg_event_id": f"t{next(_ids)}", "event": name, "email_key": key,
             "occurred_at": dt.datetime.fromtimestamp(t, dt.UTC), "received_at": now}
            for t in times])


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hours=st.lists(st.integers(0, 24 * 8), min_size=1, max_size=8),
       days=st.integers(1, 3), pick=st.integers(0, 7))
def test_counts_match_the_fullest_window_holding_the_bounce(engine: Engine, hours: list[int],
                                                            days: int, pick: int) -> None:
    times = [START + h * HOUR for h in hours]
    key = f"p{next(_ids)}@example.org"
    store(engine, key, times)
    store(engine, key, [START + 5 * HOUR], name="bounce")  # hard bounces do not count
    at = times[pick % len(times)]
    with engine.connect() as conn:
        found = soft_bounce_counts(conn, [(key, at)], SoftBounceLimit(3, days))
    assert found == [reference(times, at, days)]
    with engine.begin() as conn:
        conn.execute(delete(webhook_events).where(webhook_events.c.email_key == key))


def test_bounces_arriving_out_of_order_count_as_if_in_order(engine: Engine) -> None:
    """Three soft bounces an hour apart, the earliest stored last: it is the third."""
    store(engine, "late@example.org", [START + 2 * HOUR, START + HOUR])
    store(engine, "late@example.org", [START])
    with engine.connect() as conn:
        assert soft_bounce_counts(conn, [("late@example.org", START)],
                                  SoftBounceLimit(3, 30)) == [3]
        assert soft_bounce_counts(conn, [("late@example.org", START)],
                                  SoftBounceLimit(3, 1)) == [3]
