"""SES event records into the neutral vocabulary (newsletter.providers.ses.events): each type
AWS documents, the ids our messages carry back, and hostile records."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.providers.events import Bounce, DropReason, Kind
from newsletter.providers.ses.events import parse_record
from tests.conftest import examples
from tests.ses_records import notification, record

ADDRESS = "Reader.One@example.com"
AT = dt.datetime(2026, 11, 24, 14, 0, 5, 123000, tzinfo=dt.UTC)


def _one(found: dict[str, Any]) -> Any:
    events, ignored = parse_record(json.dumps(found))
    assert ignored == 0 and len(events) == 1, (events, ignored)
    return events[0]


@pytest.mark.parametrize(("kind", "section", "expected"), [
    ("Bounce", {}, (Kind.BOUNCED, Bounce.HARD, None)),
    ("Bounce", {"bounceType": "Transient", "bounceSubType": "MailboxFull"},
     (Kind.BOUNCED, Bounce.SOFT, None)),
    ("Bounce", {"bounceType": "Undetermined", "bounceSubType": "Undetermined"},
     (Kind.BOUNCED, Bounce.SOFT, None)),
    ("Bounce", {"bounceSubType": "OnAccountSuppressionList"},
     (Kind.DROPPED, None, DropReason.BOUNCED)),
    ("Bounce", {"bounceSubType": "Suppressed"}, (Kind.DROPPED, None, DropReason.BOUNCED)),
    ("Complaint", {}, (Kind.COMPLAINED, None, None)),
    ("Complaint", {"complaintSubType": "OnAccountSuppressionList"},
     (Kind.DROPPED, None, DropReason.COMPLAINED)),
    ("Delivery", {}, (Kind.DELIVERED, None, None)),
    ("DeliveryDelay", {}, (Kind.DEFERRED, None, None)),
    ("Reject", {}, (Kind.DROPPED, None, DropReason.OTHER)),
    ("Open", {}, (Kind.OPENED, None, None)),
    ("Click", {}, (Kind.CLICKED, None, None)),
    ("Subscription", {}, (Kind.UNSUBSCRIBED, None, None)),
    ("Subscription", {"newTopicPreferences": {"unsubscribeAll": False},
                      "oldTopicPreferences": {"unsubscribeAll": True}},
     (Kind.RESUBSCRIBED, None, None)),
])
def test_each_record_type_says_what_happened(kind: str, section: dict, expected: tuple) -> None:
    event = _one(record(kind, ADDRESS, at=AT, section=section, send=7, row=42))
    assert (event.kind, event.bounce, event.reason) == expected
    assert (event.provider, event.email, event.send_id, event.recipient_id) == (
        "ses", ADDRESS, 7, 42)
    assert event.timestamp == int(AT.timestamp())
    assert event.event_id.startswith("ses:") and len(event.event_id) <= 100


def test_opens_and_clicks_keep_the_link_agent_and_a_truncated_ip() -> None:
    click = _one(record("Click", ADDRESS, section={"ipAddress": "203.0.113.77"}))
    assert click.url == "https://example.org/2026-11-24/grid"
    assert "Safari" in (click.user_agent or "") and "203.0.113.77" not in (click.ip or "")
    opened = _one(record("Open", ADDRESS, section={"ipAddress": "2001:db8:1:2:3:4:5:6"}))
    assert opened.url is None and "3:4:5:6" not in (opened.ip or "")


def test_the_words_of_the_receiving_server_are_kept_short() -> None:
    long = "smtp; 550 " + "x" * 5000
    bounced = _one(record("Bounce", ADDRESS, section={"bouncedRecipients": [
        {"emailAddress": ADDRESS, "diagnosticCode": long}]}))
    assert bounced.detail is not None and bounced.detail.startswith("smtp; 550") \
        and len(bounced.detail) <= 300


def test_identity_notifications_without_tags_find_the_send_in_our_message_id() -> None:
    event = _one(notification("Bounce", ADDRESS, send=12, row=345))
    assert (event.kind, event.send_id, event.recipient_id) == (Kind.BOUNCED, 12, 345)
    foreign = notification("Delivery", ADDRESS)
    foreign["mail"]["commonHeaders"]["messageId"] = "<CAF=abc@mail.example.net>"
    assert _one(foreign).send_id is None  # still applied to the address, counted for no send


def test_a_bounce_names_each_recipient_it_bounced() -> None:
    found = record("Bounce", ADDRESS, section={"bouncedRecipients": [
        {"emailAddress": ADDRESS}, {"emailAddress": "second@example.com"},
        {"emailAddress": 17}, {"nothing": True}, "third@example.com"]})
    events, ignored = parse_record(json.dumps(found))
    assert [e.email for e in events] == [ADDRESS, "second@example.com", "third@example.com"]
    assert ignored == 2
    assert len({e.event_id for e in events}) == 3


def test_the_same_event_has_one_id_and_different_events_have_different_ones() -> None:
    base = record("Open", ADDRESS, at=AT, message_id="m-1")
    again = json.loads(json.dumps(base))
    assert _one(base).event_id == _one(again).event_id  # SNS delivering it twice
    later = record("Open", ADDRESS, at=AT + dt.timedelta(seconds=1), message_id="m-1")
    other_message = record("Open", ADDRESS, at=AT, message_id="m-2")
    clicked = record("Click", ADDRESS, at=AT, message_id="m-1")
    other_link = record("Click", ADDRESS, at=AT, message_id="m-1",
                        section={"link": "https://example.org/other"})
    ids = {_one(r).event_id for r in (base, later, other_message, clicked, other_link)}
    assert len(ids) == 5


def test_send_records_and_sns_notices_hold_nothing_to_apply() -> None:
    assert parse_record(json.dumps(record("Send", ADDRESS))) == ([], 0)
    notice = {"notificationType": "AmazonSnsSubscriptionSucceeded",
              "message": "You have successfully subscribed your Amazon SNS topic"}
    assert parse_record(json.dumps(notice)) == ([], 0)


@pytest.mark.parametrize("text", [
    "", "not json", "[]", "null", "17", '"Bounce"', "{}", '{"eventType": "Bounce"}',
    '{"eventType": "Bounce", "mail": []}', '{"eventType": ["Bounce"], "mail": {}}',
    '{"eventType": "Teleport", "mail": {}}', "[" * 50_000,
])
def test_records_that_are_not_records_are_ignored(text: str) -> None:
    assert parse_record(text) == ([], 1)


def test_times_out_of_range_and_addresses_that_are_not_addresses_are_ignored() -> None:
    old = record("Delivery", ADDRESS, at=dt.datetime(1999, 1, 1, tzinfo=dt.UTC))
    ahead = record("Delivery", ADDRESS, at=dt.datetime.now(dt.UTC) + dt.timedelta(days=3))
    garbled = record("Delivery", ADDRESS, section={"timestamp": "soon"})
    garbled["mail"]["timestamp"] = {"x": 1}
    nobody = record("Delivery", ADDRESS, section={"recipients": ["no-at-sign", "x" * 400 + "@a"]})
    for found in (old, ahead, garbled):
        assert parse_record(json.dumps(found)) == ([], 1)
    assert parse_record(json.dumps(nobody)) == ([], 2)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=20), inner, max_size=5), max_leaves=25)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a decoded JSON document (dict keys and list indices)."""
    found = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found += _paths(child, (*prefix, key))
    return found


@settings(max_examples=examples(150), deadline=None)
@given(data=st.data(), base=st.sampled_from(
    ["Bounce", "Complaint", "Delivery", "DeliveryDelay", "Open", "Click", "Reject",
     "Subscription", "Send"]), value=JSON, notice=st.booleans())
def test_any_record_with_any_field_replaced_parses_or_is_ignored(data: Any, base: str,
                                                                 value: Any,
                                                                 notice: bool) -> None:
    found = notification(base, ADDRESS) if notice else record(base, ADDRESS)
    path = data.draw(st.sampled_from(_paths(found)))
    target: Any = found
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    events, ignored = parse_record(json.dumps(found))
    assert ignored >= 0
    for event in events:
        assert isinstance(event.email, str) and "@" in event.email
        assert event.event_id.startswith("ses:") and len(event.event_id) <= 100
        assert event.send_id is None or isinstance(event.send_id, int)
        assert event.url is None or len(event.url) <= 4000
