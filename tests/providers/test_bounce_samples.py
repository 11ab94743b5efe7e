"""Each real-world sample read as what it is (formats, hard or soft, attribution, ids)."""

from __future__ import annotations

import pytest

from newsletter.compose.schema import BouncesConfig
from newsletter.core.tokens import make_token
from newsletter.providers.bounces.classify import PROVIDER, Context, read
from tests.mail_fixtures import SAMPLES, sample
from tests.providers.bounce_expectations import EXPECTED, RETURN_PATH, SECRET, SEND_ID

CONFIG = BouncesConfig(imap_url="imap://bounces@127.0.0.1/INBOX", return_path=RETURN_PATH)
CTX = Context(CONFIG, [SECRET], "example.org")


def test_every_sample_has_an_expectation() -> None:
    names = sorted(p.name[:2] for p in SAMPLES.glob("*.eml"))
    assert names == sorted(EXPECTED) and len(names) >= 13


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_sample(prefix: str) -> None:
    outcome, what, attribution, events = EXPECTED[prefix]
    reading = read(sample(prefix), CTX, received=1_795_000_000)
    assert (reading.outcome, reading.attribution) == (outcome, attribution)
    assert reading.what.startswith(what), reading.what
    got = [(e.kind, e.bounce, e.email, e.recipient_id) for e in reading.events]
    assert got == [(k, b, a, row) for k, b, a, row in events]
    for event in reading.events:
        assert event.provider == PROVIDER and len(event.event_id) == 32
        assert event.send_id == (SEND_ID if event.recipient_id else None)
        assert event.timestamp > 1_795_000_000  # from the bounce's own Date


def test_reading_again_gives_the_same_ids() -> None:
    first = read(sample("01"), CTX).events
    assert first == read(sample("01"), CTX).events
    other = read(sample("01").replace(b"4Q8v2S6qKTz9sWc@relay", b"4Q8v2S6qKTz9sXX@relay"),
                 CTX).events  # another bounce (its own Message-ID) about the same recipient
    assert other[0].event_id != first[0].event_id


def test_a_secret_of_the_rotation_list_still_verifies() -> None:
    rotated = Context(CONFIG, ["a-brand-new-secret-of-at-least-32-chars", SECRET], "example.org")
    assert read(sample("01"), rotated).attribution == "verp"
    forgotten = Context(CONFIG, ["a-brand-new-secret-of-at-least-32-chars"], "example.org")
    reading = read(sample("01"), forgotten)  # unsigned now: falls back to our Message-ID
    assert reading.attribution == "message-id" and reading.events[0].recipient_id == 101


def test_a_forged_token_names_nobody() -> None:
    forged = sample("09").replace(b"7-6d-hb2gwtevuon7rl5s", b"7-65-hb2gwtevuon7rl5s")
    reading = read(forged, CTX)
    assert reading.attribution == "message-id"  # the ids come from the (matching) Message-ID
    assert reading.events[0].recipient_id == 109


def test_a_message_id_of_another_domain_is_not_ours() -> None:
    raw = sample("08").replace(b"<2026-11-24.7.108@example.org>", b"<2026-11-24.7.108@evil.test>")
    reading = read(raw, CTX)
    assert reading.attribution == "none" and reading.events[0].send_id is None


def test_a_redacted_complaint_without_our_traces_is_left_for_a_person() -> None:
    raw = sample("05").replace(b"bounces+7-69-fggpddmzifm2sxvr@", b"someone@")
    reading = read(raw, CTX)
    assert reading.outcome == "unrecognised" and "names no recipient" in reading.what


@pytest.mark.parametrize("status,diagnostic,bounce", [
    ("5.1.1", "", "hard"), ("4.2.2", "", "soft"), ("5.2.2", "", "soft"),
    ("5.7.1", "", "soft"), ("5.3.4", "", "soft"), ("5.4.1", "", "hard"),
    ("", "smtp; 550 5.1.1 no such user", "hard"), ("", "smtp; 452 too many", "soft"),
    ("", "x-unix; delivery failed", "hard"),
])
def test_severity(status: str, diagnostic: str, bounce: str) -> None:
    from newsletter.providers.bounces.dsn import severity

    assert severity(status, diagnostic).value == bounce


def test_a_dsn_of_success_is_ignored() -> None:
    raw = sample("01").replace(b"Action: failed", b"Action: delivered")
    assert read(raw, CTX).outcome == "ignored"


def test_a_not_spam_report_is_no_complaint() -> None:
    raw = sample("14").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    reading = read(raw, CTX)
    assert reading.outcome == "ignored" and "not-spam" in reading.what


def test_hostile_messages_never_raise() -> None:
    for raw in (b"", b"\x00" * 100, b"Content-Type: multipart/report; boundary=x\r\n\r\n--x",
                b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n"
                b"\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n"
                b"Final-Recipient: rfc822; \r\n--x--",
                sample("01")[:700], make_token(SECRET, "x", "y").encode()):
        assert read(raw, CTX).outcome in ("unrecognised", "ignored")
