"""The round trip: an SMTP send with VERP envelope senders to a relay that accepts every
message and bounces some of them later, by a DSN to the VERP address, into the Dovecot mailbox;
`bounces fetch` then retires exactly those addresses. The send is the real `newsletter send`
with the SMTP transport: its MAIL FROM is each message's VERP address
(`newsletter.providers.bounces.verp.envelope_sender`).
"""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from newsletter.cli import main
from newsletter.core.reputation import Figures
from newsletter.db.health import figures_of
from newsletter.db.ledger_tables import send_recipients
from newsletter.providers.bounces.verp import parse
from tests.events.conftest import MailPub, add_subscribers
from tests.mail_fixtures import BounceMailbox
from tests.providers.bounce_expectations import RETURN_PATH, SECRET

PEOPLE = [f"reader{n:02d}@example.org" for n in range(12)]
HARD = {"reader02@example.org", "reader05@example.org", "reader07@example.org"}
SOFT = {"reader09@example.org"}

DSN = """\
Return-Path: <>
Delivered-To: {to}
Date: Wed, 25 Nov 2026 09:00:{n:02d} +0000
From: MAILER-DAEMON@relay.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B{n}/relay"
Message-Id: <20261125-{n}@relay.example.org>

--B{n}/relay
Content-Type: text/plain; charset=utf-8

This is the mail system at host relay.example.org.

<{rcpt}>: host mx.example.org said: {code} (in reply to end of DATA command)

--B{n}/relay
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.org

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {code}

--B{n}/relay
Content-Type: text/rfc822-headers

{headers}
--B{n}/relay--
"""


@dataclass
class LateBouncingRelay:
    """An aiosmtpd handler that takes every message, then (`run_queue`) bounces those for
    `hard` and `soft` recipients the way a relay does: a DSN to the envelope sender."""

    hard: set[str]
    soft: set[str]
    received: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        for rcpt in envelope.rcpt_tos:
            self.received.append((envelope.mail_from, rcpt, envelope.content))
        return "250 2.0.0 queued"

    def run_queue(self, mailbox: BounceMailbox) -> int:
        bounced = 0
        for n, (sender, rcpt, content) in enumerate(self.received):
            if rcpt not in self.hard | self.soft:
                continue
            headers = content.split(b"\r\n\r\n", 1)[0].decode()
            code, status = (("550 5.1.1 no such user", "5.1.1") if rcpt in self.hard
                            else ("552 4.2.2 mailbox full", "4.2.2"))
            mailbox.append(DSN.format(to=sender, rcpt=rcpt, n=n, code=code, status=status,
                                      headers=headers).encode())
            bounced += 1
        return bounced


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_smtp_send_bounced_later_retires_exactly_those(mail_pub: MailPub,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller

    from newsletter.compose.publication import Publication
    from newsletter.dispatch.service import execute, plan_send

    add_subscribers(mail_pub.engine, PEOPLE)
    relay = LateBouncingRelay(HARD, SOFT)
    controller = Controller(relay, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        url = f"smtp://127.0.0.1:{controller.port}"
        for key, value in {"SMTP_URL": url, "NEWSLETTER_SKIP_URL_CHECK": "1"}.items():
            monkeypatch.setenv(key, value)
            mail_pub.env[key] = value
        pub = Publication.load(mail_pub.root)
        plan = plan_send(pub, "2026-11-24", "everyone", transport="smtp")
        plan.transport.preflight()
        result = execute(plan)
    finally:
        controller.stop()
    assert result is not None and result.ok
    send_id = result.send.id
    with mail_pub.engine.connect() as conn:
        rows = dict(conn.execute(select(send_recipients.c.id, send_recipients.c.email)
                                 .where(send_recipients.c.send_id == send_id)).all())
    everyone = set(rows.values())
    assert everyone >= set(PEOPLE) and len(relay.received) == len(rows)
    for sender, rcpt, content in relay.received:  # each envelope names its own ledger row
        named = parse(sender, RETURN_PATH, [SECRET])
        assert named is not None and named.send_id == send_id and rows[named.recipient_id] == rcpt
        headers = email.message_from_bytes(content)
        assert headers["List-Id"] == "Policy Experts Weekly <policy-experts-weekly.example.org>"
        assert headers["Feedback-ID"] == \
            f"2026-11-24:{send_id}:policy-experts-weekly:example-org"
    assert relay.run_queue(mail_pub.mailbox) == len(HARD | SOFT)
    fetched = mail_pub.fetch()
    assert fetched.exit_code == 0, fetched.output
    assert "3 hard bounces, 1 soft bounce" in fetched.output
    statuses = mail_pub.statuses()
    assert {who for who in everyone if statuses[who] == "bounced"} == HARD
    assert statuses["reader09@example.org"] == "active"  # one soft bounce of three
    counters = mail_pub.counters()
    assert {key for (sid, key), c in counters.items() if sid == send_id and "bounces" in c} == HARD
    with mail_pub.engine.connect() as conn:  # what the reputation guard and status read
        assert figures_of(conn, [send_id])[send_id] == Figures(len(rows), len(HARD), 0)
    report = CliRunner().invoke(main, ["-C", str(mail_pub.root), "report", "2026-11-24"],
                                env=mail_pub.env, catch_exceptions=False).output
    assert (f"#{send_id} via smtp: {len(rows)} handed over; hard bounces "
            f"{len(HARD) / len(rows):.2%} (3); "
            "complaints 0.00% (0): too few handed over to judge") in report
    assert "reached Amazon SES: reviews an account at 5%, pauses an account at 10%" in report
    assert "Unsubscribes are not counted" in report  # the mailbox reports SMTP's bounces and
    assert "Bounces" not in report  # complaints (and the report does not call them unknown)
