"""Inputs that cannot crash or flood `serve`, on SQLite and PostgreSQL: an event with an
out-of-range time is ignored on its own (its batch is applied), a body of more than MAX_EVENTS
items is refused without becoming millions of objects (memory measured on a real process), the
preference form takes only the values it offers (no other digits, no unknown topic, language or
action), and the webhook decoder reads exactly what json reads."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience import get_subscriber
from newsletter.providers.sendgrid import webhook
from tests.conftest import examples
from tests.web.public.conftest import Site, event, post_events, signed
from tests.web.public.test_hardening import _peak_rss_mb
from tests.web.public.test_preferences import csrf_of, path_of, subscribe
from tests.web.public.test_serve import _free_port, _spawn, _wait


def test_an_event_with_an_out_of_range_time_is_ignored_on_its_own(site: Site, client) -> None:
    for name in ("good", "far", "negative", "text", "old", "future"):
        site.add(f"{name}@example.com")
    now = int(time.time())
    batch = [event("bounce", "good@example.com", "e-good", type="bounce"),
             event("bounce", "far@example.com", "e-far", at=2**40, type="bounce"),
             event("bounce", "negative@example.com", "e-neg", type="bounce") | {"timestamp": -5},
             event("bounce", "text@example.com", "e-text", type="bounce") | {"timestamp": "1"},
             event("bounce", "old@example.com", "e-old", at=631152000, type="bounce"),  # 1990
             event("bounce", "future@example.com", "e-future", at=now + 3 * 86400,
                   type="bounce")]
    answer = post_events(client, site.key, batch)
    assert answer.status_code == 200, answer.text
    assert answer.json() | {"status_changes": 0} == {
        "received": 6, "applied": 1, "duplicates": 0, "ignored": 5, "status_changes": 0}
    assert site.status("good@example.com") == "bounced"
    assert {site.status(f"{n}@example.com") for n in ("far", "negative", "text", "old",
                                                      "future")} == {"active"}


def test_the_event_cap_holds_at_its_edge() -> None:
    limit = webhook.MAX_EVENTS
    assert len(webhook.decode_events(json.dumps([{}] * limit).encode())) == limit
    with pytest.raises(webhook.TooManyEvents):
        webhook.decode_events(json.dumps([{}] * (limit + 1)).encode())
    assert webhook.parse_event({"sg_event_id": "x", "email": "a@example.org", "event": "open",
                        "timestamp": 2**40}) is None


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=10)


@settings(max_examples=examples(50), deadline=None)
@given(items=st.lists(json_values, max_size=6), indent=st.sampled_from([None, 0, 2]),
       junk=st.sampled_from(["", " ", "\n", ",", "]", "x", "[", "{}"]))
def test_the_decoder_reads_what_json_reads(items: list, indent: int | None, junk: str) -> None:
    """Against json.loads as the reference: the same items for every JSON array, and an error
    for every text json refuses or that is not an array."""
    decode_events = webhook.decode_events
    text = json.dumps(items, indent=indent)
    assert decode_events(text.encode()) == items
    for candidate in (text + junk, junk + text, text[:-1] + junk):
        try:
            expected = json.loads(candidate)
        except ValueError:
            expected = ValueError
        try:
            found = decode_events(candidate.encode())
        except ValueError:
            found = ValueError
        assert found == (expected if isinstance(expected, list) else ValueError), candidate


@pytest.mark.slow
def test_a_signed_20mb_body_of_tiny_items_is_refused_in_bounded_memory(site: Site) -> None:
    port = _free_port()
    process = _spawn(site, "--port", str(port), "--log-level", "warning")
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/healthz", process)
        before = _peak_rss_mb(process.pid)
        body = b"[" + b",".join([b"{}"] * (20 * 1024 * 1024 // 3 - 1)) + b"]"
        started = time.perf_counter()
        answer = httpx.post(f"{base}/webhooks/sendgrid", content=body,
                            headers=signed(site.key, body), timeout=120)
        seconds = time.perf_counter() - started
        peak = _peak_rss_mb(process.pid)
        print(f"\n{len(body) / 2**20:.1f} MB signed body of {{}} items: {answer.status_code} in "
              f"{seconds:.2f} s; serve peak {before:.0f} -> {peak:.0f} MB")
        assert answer.status_code == 413 and "more than 10,000 events" in answer.text
        assert peak - before < 120  # the body and its text; json.loads would add 500 MB
        assert httpx.get(f"{base}/healthz").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


BAD_FORMS = [
    {"action": "save", "pause": "²"},  # a digit to str.isdigit, not to int()
    {"action": "save", "pause": "٤"},  # an Arabic-Indic four
    {"action": "save", "pause": " 4"},
    {"action": "save", "pause": "5"},
    {"action": "save", "pause": ["4", "8"]},
    {"action": "save", "pause": "keep", "topics": "staff"},  # not a topic on offer
    {"action": "save", "pause": "keep", "language": "xx"},
    {"action": "stop", "topic": "staff"},
    {"action": "stop"},
    {"action": "delete-everything"},
    {"action": ["save", "unsubscribe"]},
]


@pytest.mark.parametrize("form", BAD_FORMS, ids=[json.dumps(f, ensure_ascii=False)
                                                 for f in BAD_FORMS])
def test_the_preference_form_takes_only_what_it_offers(site: Site, client, form: dict) -> None:
    subscribe(site, "reader@example.com", "energy", "staff")
    path = path_of(site, "reader@example.com")
    with site.engine.connect() as conn:
        before = get_subscriber(conn, "reader@example.com")
    page = client.get(path)
    answer = client.post(path, data={"csrf": csrf_of(page.text), **form})
    assert answer.status_code == 400, answer.text
    assert "nothing was saved" in answer.text
    with site.engine.connect() as conn:
        assert get_subscriber(conn, "reader@example.com") == before
    # the same page still saves what it offers
    fine = client.post(path, data={"csrf": csrf_of(answer.text), "action": "save",
                                   "topics": "cyber", "pause": "4"})
    assert fine.status_code == 200 and "Your choices are saved" in fine.text
