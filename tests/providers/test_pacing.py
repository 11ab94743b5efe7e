"""Adaptive concurrency for SendGrid: the Pacer as a pure object, then real sends against the
fake SendGrid with latency, X-RateLimit headers and 429 answers."""

from __future__ import annotations

import threading
import time

import pytest

from newsletter.providers.pacing import START, Pacer
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_sendgrid import FakeSendGrid

SEND = ["send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes"]


def _clean(pacer: Pacer, times: int, now: float = 100.0, latency: float = 0.3) -> None:
    for _ in range(times):
        pacer.answered(now, started=now - latency, latency=latency)


# -- the controller as a pure object ---------------------------------------------------------
def test_grows_on_clean_answers_up_to_the_maximum() -> None:
    pacer = Pacer(8)
    assert pacer.allowed == START
    _clean(pacer, 1)
    assert pacer.allowed == START + 1
    _clean(pacer, 100)
    assert pacer.allowed == 8  # never above the maximum


def test_falls_by_half_after_a_429_and_then_grows_additively() -> None:
    pacer = Pacer(8)
    _clean(pacer, 10)
    assert pacer.allowed == 8
    pacer.answered(101.0, started=100.9, latency=0.1, limited=True, clean=False)
    assert pacer.allowed == 4
    # answers to requests sent before the decrease do not shrink it again
    pacer.answered(101.1, started=100.8, latency=0.3, limited=True, clean=False)
    assert pacer.allowed == 4
    _clean(pacer, 4, now=102.0)  # one more per round trip (4 answers), not one per answer
    assert pacer.allowed == 5


def test_never_below_one() -> None:
    pacer = Pacer(8)
    for n in range(20):
        now = 100.0 + n
        pacer.answered(now, started=now, latency=0.1, limited=True, clean=False)
    assert pacer.allowed == 1 and pacer.limit >= 1.0


def test_rising_latency_shrinks_the_limit() -> None:
    pacer = Pacer(8)
    _clean(pacer, 10, latency=0.3)
    assert pacer.allowed == 8
    pacer.answered(101.0, started=100.0, latency=1.0)  # over twice the fastest answer
    assert pacer.allowed == 6
    pacer.answered(101.1, started=100.9, latency=0.31)  # normal again: grows slowly
    assert pacer.allowed == 6


def test_a_429_reset_is_waited_for() -> None:
    pacer = Pacer(8)
    pacer.answered(100.0, started=99.9, latency=0.1, limited=True, reset=103.0, clean=False)
    assert pacer.wait_for(100.0) == 3.0
    assert pacer.wait_for(102.5) == 0.5
    assert pacer.wait_for(103.0) == 0.0


def test_remaining_zero_waits_until_the_reset() -> None:
    pacer = Pacer(8)
    pacer.answered(100.0, started=99.9, latency=0.1, remaining=0, reset=101.0)
    assert pacer.wait_for(100.2) > 0.79
    assert pacer.wait_for(101.0) == 0.0


def test_the_remaining_budget_counts_requests_in_flight_and_sent() -> None:
    pacer = Pacer(8)
    pacer.in_flight = 3  # this answer's request and two more the server may not have counted
    pacer.answered(100.0, started=99.9, latency=0.1, remaining=3, reset=101.0)
    assert pacer.wait_for(100.0) == 0.0
    pacer.sent(100.0)  # the one request still allowed in this window
    assert pacer.wait_for(100.1) == pytest.approx(0.9)  # the budget is spent: wait for the reset
    assert pacer.wait_for(101.0) == 0.0
    pacer.sent(101.0)  # a new window: unknown until the next answer
    assert pacer.budget is None


def test_acquire_waits_for_a_slot_and_stop_ends_the_wait() -> None:
    pacer = Pacer(1, start=1)
    assert pacer.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(pacer.acquire()))
    waiter.start()
    time.sleep(0.15)
    assert not got  # the one slot is taken
    pacer.release()
    waiter.join(2)
    assert got == [True] and pacer.in_flight == 1
    pacer.stop.set()
    assert pacer.acquire() is False


def test_gate_waits_until_the_reset() -> None:
    pacer = Pacer(8)
    reset = time.time() + 0.3
    pacer.record(started=time.time(), latency=0.01, limited=True, reset=reset, clean=False)
    assert pacer.gate()
    assert time.time() >= reset


def test_the_setting_defaults_to_eight_and_refuses_zero() -> None:
    from pydantic import ValidationError

    from newsletter.compose.provider_config import SendGridConfig

    assert SendGridConfig().max_in_flight == 8
    with pytest.raises(ValidationError):
        SendGridConfig(max_in_flight=0)


# -- real sends ------------------------------------------------------------------------------
@pytest.mark.slow
def test_concurrency_grows_to_the_setting_and_not_beyond(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 600)
    config = pub.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("sendgrid: {categories: [weekly]}",
                                                 "sendgrid: {categories: [weekly], "
                                                 "max_in_flight: 5}"))
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "10"
    sendgrid.delay = 0.1
    result = pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert START < sendgrid.peak <= 5  # grew past where it started, never above the setting
    assert set(sendgrid.recipients().values()) == {1} and len(sendgrid.recipients()) == 600


def test_the_environment_overrides_the_setting(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 300)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "10"
    pub.env["NEWSLETTER_SENDGRID_IN_FLIGHT"] = "1"
    sendgrid.delay = 0.02
    result = pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert sendgrid.peak == 1


@pytest.mark.slow
def test_with_429s_no_request_is_sent_before_the_headers_allow(
        pub: Pub, sendgrid: FakeSendGrid) -> None:
    """The fake allows 8 requests per 2-second window and says so in X-RateLimit headers, and
    answers some requests 429 besides; the send runs with up to 8 in flight, yet nothing
    arrives between an answer that said "wait" (a 429, or Remaining 0) and its reset."""
    people = add_people(pub.engine, 1600)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "40"
    pub.env["NEWSLETTER_RETRY_ATTEMPTS"] = "50"
    sendgrid.delay = 0.05
    sendgrid.rate_limit(8, 2)
    sendgrid.fail_randomly({429: 0.15}, seed=3)
    result = pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    statuses = [p.status for p in sendgrid.pacing]
    assert statuses.count(429) >= 2, statuses  # 429s were mixed in
    assert sum(p.says_wait for p in sendgrid.pacing) >= 4
    # a request the client sent just before it read a "wait" may arrive a little later
    assert sendgrid.early(grace=0.25) == []
    for reset, count in sendgrid.window_counts.items():  # ... so each window stays near 8
        assert count <= 8 + 8, (reset, count)
    counts = sendgrid.recipients()
    assert set(counts) == {p.lower() for p in people} and set(counts.values()) == {1}
