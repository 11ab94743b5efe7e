"""Per-recipient faults stay per-recipient: SMTP 450/452/550/552, hostile names and addresses
through every transport, SendGrid gateway answers.

The hostile-data suite sends one list through the outbox, through a real aiosmtpd server with
and without SMTPUTF8, and through the fake SendGrid: each address either gets exactly one
message or a stated failure, and the ordinary addresses are unaffected.
"""

from __future__ import annotations

import email
from collections import Counter
from email import policy

import pytest
from sqlalchemy import insert, select

from newsletter.db.ledger_tables import send_recipients
from newsletter.providers.sendgrid.transport import sendgrid_error_body
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_sendgrid import FakeSendGrid

HOSTILE = [  # (address, name)
    ("crlf@example.org", "Line\r\nBreak"),
    ("lf@example.org", "Bcc: evil@example.org\nX"),
    ("tab@example.org", "Tab\there"),
    ("long@example.org", "L" * 3000),
    ("comma@example.org", "Doe, Jane; Jr."),
    ("quotes@example.org", '"Quoted" \'name\' <b>markup</b> & more'),
    ("pipe|plus+tag@example.org", "Pipe Plus"),
    ("idn@bücher.example", "Zoë IDN"),
    ("jörg@example.org", "Jörg Non-ASCII local part"),
]
ORDINARY = 12


def _ledger(pub: Pub) -> dict[str, tuple[str, str | None]]:
    with pub.engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.email, send_recipients.c.state,
                                   send_recipients.c.last_error)).all()
    return {r.email: (r.state, r.last_error) for r in rows}


def _hostile_people(pub: Pub) -> list[str]:
    import datetime as dt

    from newsletter.db.tables import subscribers

    ordinary = add_people(pub.engine, ORDINARY)
    now = dt.datetime.now(dt.UTC)
    with pub.engine.begin() as conn:
        conn.execute(insert(subscribers), [{
            "email": address, "email_key": address.lower(), "name": name, "status": "active",
            "attributes": {}, "source": "test", "created_at": now, "updated_at": now,
            "status_changed_at": now} for address, name in HOSTILE])
    return ordinary


def _check_settled(pub: Pub, result, ordinary: list[str], delivered: Counter[str],
                   may_fail: set[str]) -> None:
    """Every ordinary address once; each hostile one once or failed with a reason."""
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    ledger = _ledger(pub)
    for address in ordinary:
        assert ledger[address][0] == "accepted" and delivered[address] == 1, address
    for address, _ in HOSTILE:
        state, reason = ledger[address]
        wire = address.replace("bücher.example", "xn--bcher-kva.example")
        if state == "failed":
            assert address in may_fail, f"{address} failed: {reason}"
            assert reason and delivered[wire] == 0
        else:
            assert state == "accepted" and delivered[wire] == 1, (address, state, reason)
    assert max(delivered.values()) == 1


def test_hostile_data_through_the_outbox(pub: Pub) -> None:
    ordinary = _hostile_people(pub)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    delivered: Counter[str] = Counter()
    for path in (pub.outbox / SLUG / "1").glob("*.eml"):
        msg = email.message_from_string(path.read_bytes().decode("utf-8"),
                                        policy=policy.SMTPUTF8)
        assert len(msg.get_all("To")) == 1 and msg.get_all("Bcc") is None
        delivered[msg["To"].addresses[0].addr_spec] += 1
        assert max(len(line) for line in path.read_bytes().split(b"\r\n")) <= 998
    _check_settled(pub, result, ordinary, delivered, set())


@pytest.mark.parametrize("smtputf8", [True, False], ids=["smtputf8", "ascii-only"])
def test_hostile_data_through_smtp(pub: Pub, smtp_server, smtputf8: bool) -> None:
    server = smtp_server("plain", smtputf8=smtputf8)
    ordinary = _hostile_people(pub)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes")
    delivered = Counter(rcpts[0] for _, rcpts, _ in server.mailbox.messages)
    may_fail = set() if smtputf8 else {"jörg@example.org"}
    _check_settled(pub, result, ordinary, delivered, may_fail)
    if not smtputf8:
        assert "does not offer SMTPUTF8" in _ledger(pub)["jörg@example.org"][1]
    for _, _rcpts, data in server.mailbox.messages:
        msg = email.message_from_bytes(data, policy=policy.SMTPUTF8)
        assert msg.get_all("Bcc") is None and len(msg.get_all("To")) == 1


def test_hostile_data_through_sendgrid(pub: Pub, sendgrid: FakeSendGrid) -> None:
    ordinary = _hostile_people(pub)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    _check_settled(pub, result, ordinary, sendgrid.recipients(), set())
    names = {d.email: d.name for d in sendgrid.deliveries}
    assert names["crlf@example.org"] == "Line Break"
    assert "," not in names["comma@example.org"] and ";" not in names["comma@example.org"]


def test_smtp_450_452_550_552_are_each_that_recipients_outcome(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    pub.env["NEWSLETTER_RETRY_ATTEMPTS"] = "3"
    people = add_people(pub.engine, 20)
    greylisted, full, unknown, too_big = people[3], people[7], people[11], people[15]
    box = server.mailbox
    box.rcpt_replies = {greylisted: ["450 4.2.0 greylisted, try later", "250"],
                        full: ["452 4.2.2 mailbox full"],
                        unknown: ["550 5.1.1 no such user"]}
    box.data_replies = {too_big: "552 5.3.4 message too big for this mailbox"}
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes")
    assert result.exit_code == 0, result.output
    assert "completed via smtp with failures: 17 of 20 accepted, 3 failed" in result.output
    ledger = _ledger(pub)
    assert ledger[greylisted][0] == "accepted"  # deferred once, accepted on the next try
    assert ledger[full] == ("failed", "still deferred after 3 tries: RCPT TO: 452 4.2.2 "
                                      "mailbox full")
    assert ledger[unknown] == ("failed", "RCPT TO: 550 5.1.1 no such user")
    assert ledger[too_big] == ("failed", "end of DATA: 552 5.3.4 message too big for this "
                                         "mailbox")
    delivered = Counter(rcpts[0] for _, rcpts, _ in box.messages)
    assert set(delivered) == set(people) - {full, unknown, too_big}
    assert set(delivered.values()) == {1}
    status = pub.cli("status", SLUG).output
    for address in (full, unknown, too_big):
        assert f"failed: {address}" in status


def test_smtp_server_gone_stops_the_send_cleanly(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    pub.env["NEWSLETTER_RETRY_ATTEMPTS"] = "2"
    add_people(pub.engine, 30)
    server.mailbox.hang_up_every = 5
    server.__exit__()  # the server goes away before the send
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot reach SMTP server" in result.output


@pytest.mark.parametrize("status,body,state", [
    (502, b"<html><body>502 Bad Gateway</body></html>", "unknown"),
    (504, b"upstream timed out", "unknown"),
    (500, b"<html>oops</html>", "unknown"),
    (503, {"errors": [{"message": "service unavailable", "field": None}]}, "accepted"),
])
def test_sendgrid_gateway_answers_are_unknown(pub: Pub, sendgrid: FakeSendGrid, status: int,
                                              body, state: str) -> None:
    people = add_people(pub.engine, 5)
    sendgrid.answer(status, body)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    ledger = _ledger(pub)
    assert {ledger[p][0] for p in people} == {state}
    assert len(sendgrid.sends()) == (1 if state == "unknown" else 2)  # never retried blindly
    assert (result.exit_code == 1) == (state == "unknown"), result.output


def test_sendgrid_error_body_is_recognised() -> None:
    assert sendgrid_error_body(b'{"errors": [{"message": "x"}]}')
    assert not sendgrid_error_body(b"<html>502</html>")
    assert not sendgrid_error_body(b'{"message": "not sendgrid"}')
    assert not sendgrid_error_body(b"")
