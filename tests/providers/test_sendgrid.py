"""SendGrid: exact request bodies, limits, and `newsletter send` against the fake server."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import func, select

from newsletter.audience import add_subscriber
from newsletter.core.errors import InputError
from newsletter.core.personalise import Recipient
from newsletter.core.tokens import read_token
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.providers.mailing import ASM_UNSUBSCRIBE_TAG, Item, Mailing
from newsletter.providers.sendgrid.payload import (
    PayloadBuilder,
    check_categories,
    sendgrid_name,
)
from tests.conftest import sample_build
from tests.dispatch.conftest import SECRET, SLUG, Pub, add_people
from tests.fake_sendgrid import FakeSendGrid

TRICKY = 'Tom & "Jerry" <b>'


def _mailing(**changes) -> Mailing:
    """The sample issue's mailing (no database needed; the build is shared, built once)."""
    publication, build = sample_build(SLUG)
    config = publication.config
    return Mailing(config, build.slug, build.subject, build.html, build.text,
                   build.content_hash, "7", SECRET, categories=["weekly"], **changes)


def _count(pub: Pub, table=sends) -> int:
    with pub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- request bodies ---------------------------------------------------------------------------
def test_request_body_follows_the_mail_send_api() -> None:
    mailing = _mailing()
    builder = PayloadBuilder(mailing)
    tom = Item(41, Recipient("tom@example.org", TRICKY, {"role": "press"}))
    body, rejected = builder.body([tom, Item(42, Recipient("ann@example.org", "Ann, PhD; MD"))])
    assert rejected == {}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["from"] == {"email": "newsletter@example.org", "name": "Example Institute"}
    assert body["reply_to"] == {"email": "info@example.org"}
    assert body["custom_args"] == {"nl_issue": SLUG, "nl_send": "7"}
    assert body["categories"] == ["weekly"]
    assert "asm" not in body and "send_at" not in body
    text, html = body["content"][0]["value"], body["content"][1]["value"]
    assert "%%text:first_name|there%%" in text and "%%html:" not in text
    assert "%%html:first_name|there%%" in html and "%%text:" not in html
    first = body["personalizations"][0]
    assert first["to"] == [{"email": "tom@example.org", "name": TRICKY}]
    assert body["personalizations"][1]["to"][0]["name"] == "Ann PhD MD"  # no ; or ,
    subs = first["substitutions"]
    link = first["headers"]["List-Unsubscribe"].strip("<>")
    assert read_token(SECRET, "unsubscribe", link.rsplit("/", 1)[1]) == "tom@example.org"
    assert subs["%%text:unsubscribe_url%%"] == link
    assert subs["%%html:unsubscribe_url%%"] == link
    assert subs["%%text:first_name|there%%"] == "Tom"
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["custom_args"] == {"nl_recipient": "41"}
    assert len(json.dumps(body)) < 200_000


def test_html_values_are_escaped_and_text_values_are_not() -> None:
    mailing = _mailing()
    mailing.text += "\nName: %%name%%\n"
    mailing.html += "<p>Name: %%name%%</p>"
    body, _ = PayloadBuilder(mailing).body([Item(1, Recipient("tom@example.org", TRICKY))])
    subs = body["personalizations"][0]["substitutions"]
    assert subs["%%text:name%%"] == TRICKY
    assert subs["%%html:name%%"] == "Tom &amp; &quot;Jerry&quot; &lt;b&gt;"


def test_unsubscribe_group_uses_sendgrids_link() -> None:
    mailing = _mailing(asm_group_id=321)
    body, _ = PayloadBuilder(mailing).body([Item(1, Recipient("tom@example.org", "Tom"))])
    assert body["asm"] == {"group_id": 321}
    for part in body["content"]:
        assert ASM_UNSUBSCRIBE_TAG in part["value"]
        assert "unsubscribe_url" not in part["value"]
    person = body["personalizations"][0]
    assert not any("unsubscribe" in key for key in person["substitutions"])
    # the one-click header still points at our own signed endpoint
    assert person["headers"]["List-Unsubscribe"].startswith("<https://news.example.org/")


def test_batches_respect_the_substitution_limits() -> None:
    mailing = _mailing()
    assert PayloadBuilder(mailing).batch_size == 1000
    mailing.text += "".join(f"%%attr.a{n}%%" for n in range(30))
    builder = PayloadBuilder(mailing)
    # 4 placeholders twice (name, email, unsubscribe and preference links), 30 attributes
    assert builder.substitutions_each == 38
    assert builder.batch_size == 10_000 // 38
    with pytest.raises(ValueError, match="exceed the batch size"):
        builder.body([Item(n, Recipient(f"r{n}@example.org")) for n in range(300)])


def test_a_recipient_over_the_size_limit_is_refused_alone() -> None:
    mailing = _mailing()
    mailing.text += "%%attr.bio%%"
    big = Item(1, Recipient("big@example.org", "Big", {"bio": "x" * 12_000}))
    body, rejected = PayloadBuilder(mailing).body([big, Item(2, Recipient("ok@example.org"))])
    assert list(rejected) == [1] and "10000 per recipient" in rejected[1]
    assert [p["to"][0]["email"] for p in body["personalizations"]] == ["ok@example.org"]


def test_no_address_twice_in_one_request() -> None:
    builder = PayloadBuilder(_mailing())
    with pytest.raises(ValueError, match="twice"):
        builder.body([Item(1, Recipient("a@example.org")), Item(2, Recipient("A@example.org"))])


def test_category_rules() -> None:
    assert check_categories(["weekly"]) == []
    problems = " ".join(p.message for p in check_categories([f"c{n}" for n in range(11)]
                                                            + ["c1", "é", "x" * 256]))
    for words in ("at most 10", "must not repeat", "must be ASCII", "longer than 255"):
        assert words in problems
    assert sendgrid_name("Doe, Jane; Dr") == "Doe Jane Dr"
    assert sendgrid_name("Doe,\r\nJane") == "Doe Jane"  # a clean name, too


def test_publication_settings_sendgrid_cannot_take_are_refused() -> None:
    mailing = _mailing()
    mailing.categories = [f"c{n}" for n in range(12)]
    with pytest.raises(InputError, match="at most 10"):
        PayloadBuilder(mailing)


# -- newsletter send against the fake server --------------------------------------------------
@pytest.mark.slow
def test_send_delivers_once_each_with_substitutions_done_right(pub: Pub,
                                                                sendgrid: FakeSendGrid) -> None:
    people = add_people(pub.engine, 2500)
    with pub.engine.begin() as conn:
        add_subscriber(conn, "tom@example.org", name=TRICKY)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 0, result.output
    assert "completed via sendgrid: 2,501 of 2,501 accepted" in result.output
    assert [status for status, _ in sendgrid.sends()] == [202, 202, 202]  # 1000+1000+501
    counts = sendgrid.recipients()
    assert set(counts) == {p.lower() for p in people} | {"tom@example.org"}
    assert set(counts.values()) == {1}
    tom = next(d for d in sendgrid.deliveries if d.email == "tom@example.org")
    assert tom.name == TRICKY
    assert "Hello Tom," in tom.text and "Hello Tom," in tom.html
    assert "You receive this email as tom@example.org" in tom.text
    assert "%%" not in tom.text + tom.html
    assert tom.custom_args == {"nl_issue": SLUG, "nl_send": "1", "nl_recipient": tom.custom_args[
        "nl_recipient"]}
    assert tom.categories == ["weekly"]
    assert tom.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert tom.headers["List-Unsubscribe"].strip("<>") in tom.text
    with pub.engine.connect() as conn:
        ids = conn.execute(select(send_recipients.c.provider_id).where(
            send_recipients.c.email == "tom@example.org")).scalar_one()
    assert ids == tom.message_id


def test_429_waits_for_the_rate_limit_reset(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 5)
    reset = int(time.time()) + 2
    sendgrid.answer(429, headers={"X-RateLimit-Reset": str(reset)})
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 0, result.output
    (first, _), (second, when) = sendgrid.sends()
    assert (first, second) == (429, 202)
    assert when >= reset - 0.05  # waited for the reset, not the (tiny) test backoff
    assert set(sendgrid.recipients().values()) == {1}


def test_5xx_is_retried_with_backoff(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 5)
    sendgrid.answer(500)
    sendgrid.answer(503)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 0, result.output
    assert [s for s, _ in sendgrid.sends()] == [500, 503, 202]
    assert sum(sendgrid.recipients().values()) == 5


def test_endless_5xx_stops_the_send_resumably(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 5)
    pub.env["NEWSLETTER_RETRY_ATTEMPTS"] = "3"
    sendgrid.answer(500, times=3)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 1
    assert "gave up after 3 attempts" in result.output and "Run the same command" in result.output
    assert sendgrid.recipients() == {}
    again = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert again.exit_code == 0, again.output
    assert sum(sendgrid.recipients().values()) == 5


def test_400_stops_with_sendgrids_message(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 5)
    sendgrid.answer(400, {"errors": [{"field": "from", "message": "The from address does not "
                                      "match a verified Sender Identity."}]})
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 1
    assert ("SendGrid rejected the request (400): from: The from address does not match a "
            "verified Sender Identity.") in result.output
    assert len(sendgrid.sends()) == 1  # not retried
    with pub.engine.connect() as conn:
        states = conn.execute(select(send_recipients.c.state)).scalars().all()
        state = conn.execute(select(sends.c.state)).scalar_one()
    assert set(states) == {"pending"} and state == "stopped"


def test_413_splits_the_batch(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 40)
    sendgrid.answer(413)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 0, result.output
    assert [s for s, _ in sendgrid.sends()] == [413, 202, 202]
    assert set(sendgrid.recipients().values()) == {1} and len(sendgrid.recipients()) == 40


def test_a_lost_answer_is_unknown_listed_and_resent_only_on_purpose(
        pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 30)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "10"
    sendgrid.answer(202, action="drop")  # one request is taken but never answered
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 1
    assert "20 of 30 accepted, 0 failed, 10 unknown, 0 pending" in result.output
    with pub.engine.connect() as conn:
        lost = conn.execute(select(send_recipients.c.email, send_recipients.c.batch).where(
            send_recipients.c.state == "unknown")).all()
    assert len(lost) == 10 and len({batch for _, batch in lost}) == 1
    assert f"unknown: {lost[0][0]}" in result.output
    status = pub.cli("status", SLUG).output
    assert "10 unknown" in status and f"unknown: {lost[-1][0]} (batch {lost[0][1]}," in status
    again = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert again.exit_code == 1 and "--resend-unknown" in again.output
    assert len(sendgrid.sends()) == 3
    forced = pub.cli("send", SLUG, "--segment", "everyone", "--yes", "--resend-unknown")
    assert forced.exit_code == 0, forced.output
    counts = sendgrid.recipients()
    assert {counts[email] for email, _ in lost} == {2}  # the operator asked for it
    assert sum(counts.values()) == 40


def test_an_unknown_batch_the_provider_took_is_accepted_on_the_operators_word(
        pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 20)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "10"
    sendgrid.answer(202, action="drop")
    assert pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid",
                   "--yes").exit_code == 1
    with pub.engine.connect() as conn:
        batch = conn.execute(select(send_recipients.c.batch).where(
            send_recipients.c.state == "unknown")).scalars().first()
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes", "--accept-batch", str(batch))
    assert result.exit_code == 0, result.output
    assert "completed via sendgrid: 20 of 20 accepted" in result.output
    assert set(sendgrid.recipients().values()) == {1} and len(sendgrid.sends()) == 2


@pytest.mark.slow
def test_random_429_and_500_still_deliver_exactly_once(pub: Pub, sendgrid: FakeSendGrid) -> None:
    people = add_people(pub.engine, 3000)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "100"
    pub.env["NEWSLETTER_RETRY_ATTEMPTS"] = "20"
    sendgrid.fail_randomly({429: 0.25, 500: 0.25}, seed=7)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 0, result.output
    statuses = [s for s, _ in sendgrid.sends()]
    assert statuses.count(429) > 5 and statuses.count(500) > 5
    counts = sendgrid.recipients()
    assert set(counts) == {p.lower() for p in people} and set(counts.values()) == {1}


# -- errors before anything is sent -----------------------------------------------------------
def test_a_bad_api_key_is_one_error_before_anything_is_sent(pub: Pub,
                                                            sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 3)
    pub.env["SENDGRID_API_KEY"] = "SG.wrong"
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(
        "Error: SendGrid refused the API key (401)")
    assert "Traceback" not in result.output
    assert sendgrid.sends() == [] and _count(pub) == 0


def test_a_key_without_mail_send_is_refused(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 3)
    sendgrid.scopes = ["stats.read"]
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 1 and "lacks the Mail Send permission" in result.output
    assert _count(pub) == 0


def test_missing_api_key(pub: Pub) -> None:
    add_people(pub.engine, 3)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 2
    assert result.output.strip().endswith("Error: SENDGRID_API_KEY is not set; create an API key "
                                          "with Mail Send permission in SendGrid")
    assert _count(pub) == 0


def test_unreachable_sendgrid(pub: Pub) -> None:
    add_people(pub.engine, 3)
    pub.env.update(SENDGRID_API_KEY="SG.x", SENDGRID_API_URL="http://127.0.0.1:9")
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert result.exit_code == 1 and "cannot reach SendGrid at http://127.0.0.1:9" in result.output
    assert _count(pub) == 0


@pytest.mark.parametrize("segment,words", [("nobody-here", "unknown segment 'nobody-here'"),
                                           ("everyone", "has no active subscribers")])
def test_empty_or_unknown_segment(pub: Pub, sendgrid: FakeSendGrid, segment: str,
                                  words: str) -> None:
    result = pub.cli("send", SLUG, "--segment", segment, "--transport", "sendgrid", "--yes")
    assert result.exit_code == 2 and words in result.output
    assert "Traceback" not in result.output
    assert sendgrid.sends() == [] and _count(pub) == 0 and _count(pub, send_recipients) == 0


# -- scheduling -------------------------------------------------------------------------------
def test_schedule_with_send_at_and_cancel(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 3)
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)).replace(second=0, microsecond=0)
    at = when.strftime("%Y-%m-%dT%H:%MZ")
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes",
                     "--at", at)
    assert result.exit_code == 0, result.output
    assert f"scheduled for {when:%Y-%m-%d %H:%M} UTC" in result.output
    delivery = sendgrid.deliveries[0]
    assert delivery.send_at == int(when.timestamp())
    assert delivery.batch_id in sendgrid.batches
    assert "scheduled for" in pub.cli("status", SLUG).output
    cancel = pub.cli("send", "cancel", SLUG, "--segment", "everyone", "--yes")
    assert cancel.exit_code == 0, cancel.output
    assert "cancelled send #1" in cancel.output
    assert sendgrid.batches[delivery.batch_id] == "cancel"
    assert ": cancelled" in pub.cli("status", SLUG).output
    # a cancelled send does not count as sent
    again = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("args,words", [
    (["--transport", "outbox", "--at", "2099-01-01T10:00Z"], "--at needs the sendgrid transport"),
    (["--transport", "sendgrid", "--at", "2099-01-01T10:00Z"], "more than 72 hours ahead"),
    (["--transport", "sendgrid", "--at", "2001-01-01T10:00Z"], "is in the past"),
    (["--transport", "sendgrid", "--at", "2099-01-01T10:00"], "needs a time zone"),
])
def test_bad_schedules_are_refused(pub: Pub, sendgrid: FakeSendGrid, args: list[str],
                                   words: str) -> None:
    add_people(pub.engine, 2)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes", *args)
    assert result.exit_code == 2 and words in result.output
    assert _count(pub) == 0


def test_cancel_without_a_scheduled_send(pub: Pub) -> None:
    result = pub.cli("send", "cancel", SLUG, "--yes")
    assert result.exit_code == 2
    assert f"no scheduled or stopped send of {SLUG} to cancel" in result.output


def test_network_errors_before_the_request_arrives_are_retried_not_unknown() -> None:
    import socket

    from newsletter.providers.sendgrid.transport import SendGridTransport

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = SendGridTransport("SG.key", f"http://127.0.0.1:{port}", timeout=2)
    transport.open(_mailing())
    result = transport.send([Item(1, Recipient("a@example.org"))])
    assert result.stop is None
    assert result.outcomes[0].state == "retry"
    assert "cannot reach SendGrid" in result.outcomes[0].error
