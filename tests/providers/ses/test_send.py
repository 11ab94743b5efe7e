"""Sending through SES: the real boto3 client against moto's server (tests.fake_ses)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_recipients
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_ses import FakeSes

SEND = ["send", SLUG, "--segment", "everyone", "--transport", "ses", "--yes"]


def _ledger(pub: Pub) -> dict[str, tuple[str, str | None, str | None]]:
    with pub.engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.email, send_recipients.c.state,
                                   send_recipients.c.provider_id,
                                   send_recipients.c.last_error)).all()
    return {r.email: (r.state, r.provider_id, r.last_error) for r in rows}


def test_each_recipient_gets_one_message_of_their_own(ses_pub: Pub, ses: FakeSes) -> None:
    people = add_people(ses_pub.engine, 30)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert "completed via ses: 30 of 30 accepted" in result.output
    messages = ses.messages()
    assert sorted(m["To"][0] for m in messages) == sorted(people)
    ledger = _ledger(ses_pub)
    for message in messages:
        address = message["To"][0]
        assert ledger[address][:2] == ("accepted", message["MessageId"])
        mime = FakeSes.parsed(message)
        assert mime["To"].addresses[0].addr_spec == address
        unsubscribe = mime["List-Unsubscribe"].strip("<>")
        assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert unsubscribe in mime.get_body(("plain",)).get_content()
        assert message["Tags"]["nl_send"] == "1" and message["Tags"]["nl_issue"] == SLUG
        assert message["From"] == "newsletter@example.org"


def test_the_accounts_sending_rate_is_obeyed(ses_pub: Pub, ses: FakeSes) -> None:
    """GetAccount says 25 messages/s and the stand-in throttles beyond that (a bucket of one
    second's worth, as SES allows short bursts): the send never meets a throttle, and takes
    the time the rate asks for. (Exact spacing at the sender: test_rate.py.)"""
    ses.account(MaxSendRate=25.0)
    add_people(ses_pub.engine, 75)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert "at most 25 messages/s" in result.output
    assert {what for what, _ in ses.sends} == {200}  # not one throttle
    times = sorted(at for _, at in ses.sends)
    assert len(times) == 75 and times[-1] - times[0] >= (75 - 25) / 25 * 0.9


def test_throttling_is_sent_again_at_a_lower_rate(ses_pub: Pub, ses: FakeSes) -> None:
    people = add_people(ses_pub.engine, 20)
    ses.answer("throttle", times=3)
    ses.answer(("aws", 400, "LimitExceededException", "Too many requests."), times=1)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert [w for w, _ in ses.sends].count(("throttle", 429)) == 3
    counts = ses.recipients()
    assert set(counts) == set(people) and set(counts.values()) == {1}
    assert {state for state, _, _ in _ledger(ses_pub).values()} == {"accepted"}


def test_the_daily_quota_stops_the_send_resumably(ses_pub: Pub, ses: FakeSes) -> None:
    people = add_people(ses_pub.engine, 10)
    ses.account(Max24HourSend=4.0)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1
    assert "daily sending quota is used up" in result.output
    assert "Daily message quota exceeded" in result.output
    assert len(ses.recipients()) == 4
    ses.account(SentLast24Hours=0, Max24HourSend=100.0)  # the next day
    again = ses_pub.cli(*SEND)
    assert again.exit_code == 0, again.output
    counts = ses.recipients()
    assert set(counts) == set(people) and set(counts.values()) == {1}


@pytest.mark.parametrize("answer,state", [
    (("gateway", 502, b"<html><body>502 Bad Gateway</body></html>"), "unknown"),
    (("gateway", 504, b"upstream timed out"), "unknown"),
    (("gateway", 500, b"<html>oops</html>"), "unknown"),
    (("aws", 500, "InternalFailure", "The request processing has failed."), "accepted"),
    (("aws", 503, "ServiceUnavailable", "Service is unavailable."), "accepted"),
])
def test_5xx_with_ses_words_is_retried_and_a_gateways_is_unknown(
        ses_pub: Pub, ses: FakeSes, answer, state: str) -> None:
    add_people(ses_pub.engine, 1)
    ses.answer(answer)
    result = ses_pub.cli(*SEND)
    [(address, (found, _, error))] = _ledger(ses_pub).items()
    assert found == state, error
    assert len(ses.sends) == (1 if state == "unknown" else 2)  # never retried blindly
    assert (result.exit_code == 1) == (state == "unknown"), result.output
    if state == "unknown":
        assert "may have been taken" in error and ses.recipients() == {}


@pytest.mark.parametrize("action", ["cut", "hangup"])
def test_a_lost_answer_is_unknown_and_settled_by_the_operator(ses_pub: Pub, ses: FakeSes,
                                                              action: str) -> None:
    """"cut": SES took the message, the answer was lost; "hangup": the connection closed
    before SES had it. The sender cannot tell the two apart; the operator reads SES's side."""
    people = add_people(ses_pub.engine, 6)
    ses.answer("forward", times=2)
    ses.answer(action)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1
    assert "5 of 6 accepted, 0 failed, 1 unknown, 0 pending" in result.output
    [lost] = [e for e, (state, _, _) in _ledger(ses_pub).items() if state == "unknown"]
    assert "no answer from SES" in _ledger(ses_pub)[lost][2]
    taken = ses.recipients().get(lost, 0)
    assert taken == (1 if action == "cut" else 0)
    with ses_pub.engine.connect() as conn:
        batch = conn.execute(select(send_recipients.c.batch).where(
            send_recipients.c.state == "unknown")).scalar_one()
    flag = "--accept-batch" if taken else "--resend-batch"
    settled = ses_pub.cli("send", SLUG, "--segment", "everyone", "--yes", flag, str(batch))
    assert settled.exit_code == 0, settled.output
    counts = ses.recipients()
    assert set(counts) == set(people) and set(counts.values()) == {1}


def test_a_recipient_ses_refuses_is_that_recipients_failure(ses_pub: Pub, ses: FakeSes) -> None:
    """In the sandbox SES takes only verified recipients: the others fail, each with SES's
    own words, and the send goes on."""
    people = add_people(ses_pub.engine, 8)
    verified = people[::2]
    for address in verified:
        ses.client().create_email_identity(EmailIdentity=address)
    ses.client().delete_email_identity(EmailIdentity="example.com")  # not the whole domain
    ses.account(ProductionAccessEnabled=False)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert "completed via ses with failures: 4 of 8 accepted, 4 failed" in result.output
    ledger = _ledger(ses_pub)
    for address in people:
        state, _, error = ledger[address]
        if address in verified:
            assert state == "accepted"
        else:
            assert state == "failed" and "Email address is not verified" in error
            assert address in error
    assert sorted(ses.recipients()) == sorted(verified)


def test_each_message_is_rendered_as_it_leaves_and_one_too_large_fails_alone(
        ses_pub: Pub, ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker renders each message right before its SendEmail, not its whole batch ahead
    (a few hundred sending threads each holding a batch of rendered messages peaked at 772
    MB); a message over SES's size limit is that recipient's failure, found as it is
    rendered."""
    from newsletter.providers.mime import MimeRenderer
    from newsletter.providers.ses import transport as ses_transport

    people = add_people(ses_pub.engine, 12)
    big = people[5]
    monkeypatch.setattr(ses_transport, "MAX_RAW_BYTES", 200_000)
    render, send_one = MimeRenderer.render, ses_transport.SesTransport._send_one
    steps: list[tuple[str, str]] = []

    def rendered(self: MimeRenderer, recipient, *args, **kw):  # noqa: ANN001, ANN202
        steps.append(("render", recipient.email))
        data = render(self, recipient, *args, **kw)
        return data + b" " * 200_000 if recipient.email == big else data

    def sent(self, item, params):  # noqa: ANN001, ANN202
        steps.append(("send", item.recipient.email))
        return send_one(self, item, params)

    monkeypatch.setattr(MimeRenderer, "render", rendered)
    monkeypatch.setattr(ses_transport.SesTransport, "_send_one", sent)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert "11 of 12 accepted, 1 failed" in result.output
    expected = [step for address in people
                for step in [("render", address)] + ([("send", address)] if address != big
                                                     else [])]
    assert [s for s in steps if s[1] in people] == expected
    state, _, error = _ledger(ses_pub)[big]
    assert state == "failed" and "SES takes at most 40 MB" in error
    assert big not in ses.recipients()


def test_a_sender_ses_does_not_accept_stops_before_anyone_else(ses_pub: Pub,
                                                               ses: FakeSes) -> None:
    add_people(ses_pub.engine, 5)
    ses.client().delete_email_identity(EmailIdentity="example.org")
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1
    assert "SES refused the sender newsletter@example.org" in result.output
    assert len(ses.sends) <= 2 and ses.recipients() == {}  # sent before the first answer
    assert {state for state, _, _ in _ledger(ses_pub).values()} == {"pending"}


@pytest.mark.parametrize("code,words", [
    ("AccountSuspendedException", "SES has suspended the account's sending"),
    ("SendingPausedException", "SES has paused sending"),
    ("MailFromDomainNotVerifiedException", "MAIL FROM domain"),
    ("UnrecognizedClientException", "SES refused the AWS credentials"),
])
def test_account_troubles_stop_the_send(ses_pub: Pub, ses: FakeSes, code: str,
                                        words: str) -> None:
    add_people(ses_pub.engine, 3)
    ses.answer(("aws", 400 if code != "UnrecognizedClientException" else 403, code, "no"))
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1 and words in result.output, result.output
    assert len(ses.sends) <= 2  # the other one left before the first answer came
    ledger = _ledger(ses_pub)
    accepted = {e for e, (state, _, _) in ledger.items() if state == "accepted"}
    assert len(accepted) <= 1 and set(ses.recipients()) == accepted
    assert {state for state, _, _ in ledger.values()} <= {"pending", "accepted"}
