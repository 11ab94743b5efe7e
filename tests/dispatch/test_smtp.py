"""SMTP against a real aiosmtpd server: STARTTLS and TLS, login, reconnects, refusals."""

from __future__ import annotations

import email
from email import policy

from sqlalchemy import func, select

from newsletter.db.ledger_tables import sends
from tests.dispatch.conftest import SLUG, Pub, add_people, kill_when, ledger_states


def _send(pub: Pub, *extra: str):
    return pub.cli("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes", *extra)


def _recipients(server) -> list[str]:
    return [rcpts[0] for _, rcpts, _ in server.mailbox.messages]


def test_starttls_with_login_one_message_per_recipient(pub: Pub, smtp_server) -> None:
    server = smtp_server("starttls", "editor", "p@ss word")
    server.url = server.url.replace("p@ss word", "p%40ss%20word")
    pub.env["SMTP_URL"] = server.url
    people = add_people(pub.engine, 12)
    result = _send(pub)
    assert result.exit_code == 0, result.output
    assert "completed via smtp: 12 of 12 accepted" in result.output
    assert sorted(_recipients(server)) == sorted(people)
    for sender, rcpts, data in server.mailbox.messages:
        msg = email.message_from_bytes(data, policy=policy.default)
        assert sender == "newsletter@example.org" and len(rcpts) == 1
        assert msg["To"].addresses[0].addr_spec == rcpts[0]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert rcpts[0] in msg.get_body(("plain",)).get_content()


def test_implicit_tls(pub: Pub, smtp_server) -> None:
    server = smtp_server("tls")
    add_people(pub.engine, 3)
    assert _send(pub).exit_code == 0
    assert len(server.mailbox.messages) == 3
    assert server.url.startswith("smtps://")


def test_a_dropped_connection_is_reopened(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    server.mailbox.hang_up_every = 4
    people = add_people(pub.engine, 25)
    result = _send(pub)
    assert result.exit_code == 0, result.output
    assert sorted(_recipients(server)) == sorted(people)  # each exactly once


def test_a_refused_recipient_fails_alone_and_settles(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    people = add_people(pub.engine, 6)
    server.mailbox.refuse_rcpt = {people[2]}
    result = _send(pub)
    assert result.exit_code == 0, result.output
    assert f"failed: {people[2]} (RCPT TO: 550 5.1.1 no such mailbox)" in result.output
    assert "completed via smtp with failures: 5 of 6 accepted, 1 failed" in result.output
    status = pub.cli("status", SLUG).output
    assert "completed" in status
    assert f"failed: {people[2]} (batch 1, attempts 1; RCPT TO: 550" in status
    server.mailbox.refuse_rcpt = set()
    again = _send(pub)  # a permanent failure is not tried again by a plain resume
    assert again.exit_code == 0 and "nothing to send" in again.output, again.output
    assert len(server.mailbox.messages) == 5
    retried = _send(pub, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert "completed via smtp: 6 of 6 accepted" in retried.output
    assert sorted(_recipients(server)) == sorted(people)


def test_a_lost_reply_is_unknown_not_resent(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    server.mailbox.lose_reply_once = True
    people = add_people(pub.engine, 4)
    result = _send(pub)
    assert result.exit_code == 1
    assert f"unknown: {people[0]} (connection lost after the message was sent" in result.output
    assert sorted(_recipients(server)) == sorted(people)  # the server did take it
    again = _send(pub)
    assert again.exit_code == 1 and "--resend-unknown" in again.output
    assert len(server.mailbox.messages) == 4


def test_unreachable_server_is_one_error_before_anything(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    server.__exit__()
    add_people(pub.engine, 3)
    result = _send(pub)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: cannot reach SMTP server smtp://127.0.0.1:{server.port}: Connection refused")
    with pub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sends)).scalar_one() == 0


def test_a_wrong_password_is_refused_before_anything(pub: Pub, smtp_server) -> None:
    server = smtp_server("starttls", "editor", "right")
    pub.env["SMTP_URL"] = server.url.replace("right", "wrong")
    add_people(pub.engine, 3)
    result = _send(pub)
    assert result.exit_code == 1 and "refused the login: 535" in result.output
    assert server.mailbox.messages == []


def test_missing_or_bad_smtp_url(pub: Pub) -> None:
    add_people(pub.engine, 1)
    result = _send(pub)
    assert result.exit_code == 2 and "Error: SMTP_URL is not set" in result.output
    pub.env["SMTP_URL"] = "http://example.org"
    assert "SMTP_URL must look like" in _send(pub).output


def test_kill_9_leaves_only_the_message_in_flight_unknown(pub: Pub, smtp_server) -> None:
    """SMTP hands over one message at a time and each 250 is recorded as it comes: a kill -9
    in the middle of a batch (of 10) leaves exactly the message in flight unknown; `status`
    names it, and settling that one recipient finishes the send, each person once."""
    server = smtp_server("plain")
    people = add_people(pub.engine, 25)
    server.mailbox.gate_at = 15  # the 15th message (in the second batch) is in flight
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes")
    assert kill_when(pub, proc, server.mailbox.at_gate.is_set)
    server.mailbox.gate.set()  # the server never took it: the client was gone first
    delivered = _recipients(server)
    assert sorted(delivered) == people[:14]
    states = ledger_states(pub)
    assert [states[p] for p in people[:14]] == [["accepted"]] * 14
    assert states[people[14]] == ["unknown"]
    assert {s[0] for p, s in states.items() if p in people[15:]} == {"pending"}
    status = pub.cli("status", SLUG).output
    assert "1 unknown" in status
    assert (f"unknown: {people[14]} (batch 2, attempts 1; in flight when the send stopped"
            in status)
    settled = _send(pub, "--resend-recipient", people[14])
    assert settled.exit_code == 0, settled.output
    assert sorted(_recipients(server)) == sorted(people)  # each exactly once
    assert all(s == ["accepted"] for s in ledger_states(pub).values())


def test_unknown_recipients_can_be_settled_one_by_one(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    people = add_people(pub.engine, 4)
    server.mailbox.lose_reply_once = True  # the server takes the first, the reply is lost
    first = _send(pub)
    assert first.exit_code == 1 and f"unknown: {people[0]}" in first.output
    accepted = _send(pub, "--accept-recipient", people[0].upper())
    assert accepted.exit_code == 0, accepted.output
    assert f"{people[0].upper()} recorded as accepted" in accepted.output
    assert sorted(_recipients(server)) == sorted(people)
    assert all(s == ["accepted"] for s in ledger_states(pub).values())


def test_the_envelope_sender_is_each_messages_verp_address(pub: Pub, smtp_server) -> None:
    """With a bounce mailbox (`bounces:`), each message's MAIL FROM is its own VERP address,
    naming its send and ledger row; a test send, outside the ledger, uses the From address."""
    from newsletter.db.ledger_tables import send_recipients
    from newsletter.providers.bounces.verp import parse
    from tests.dispatch.conftest import SECRET

    config = pub.root / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "bounces:\n  imap_url: "
                      "imaps://bounces@imap.example.org/INBOX\n  return_path: "
                      "bounces@news.example.org\n", encoding="utf-8")
    server = smtp_server("plain")
    add_people(pub.engine, 5)
    assert _send(pub).exit_code == 0
    with pub.engine.connect() as conn:
        rows = dict(conn.execute(select(send_recipients.c.id, send_recipients.c.email)).all())
    assert len(server.mailbox.messages) == 5
    for sender, rcpts, _ in server.mailbox.messages:
        assert sender.startswith("bounces+") and sender.endswith("@news.example.org")
        named = parse(sender, "bounces@news.example.org", [SECRET])
        assert named is not None and named.send_id == 1 and rows[named.recipient_id] == rcpts[0]
    trial = pub.cli("send-test", SLUG, "--transport", "smtp")
    assert trial.exit_code == 0, trial.output
    assert server.mailbox.messages[-1][0] == "newsletter@example.org"
