"""The reputation guard on a SendGrid send, end to end: the real `sendgrid` client sends to the
fake SendGrid (tests/fake_sendgrid.py) from a real `newsletter send` process, while SendGrid's
signed Event Webhook posts bounce and complaint events to a real `newsletter serve`. The send
pauses on its own at the threshold, a plain re-run refuses, and `send --resume` goes on: the
guard then watches the rest of the send and pauses it once more on complaints; a second resume
finishes it, every person mailed once. On SQLite and PostgreSQL.

No sleeps: the fake holds chosen mail send requests until the test has posted its events and
`serve` has answered (stored) them, so the guard's check before the next batch sees them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from newsletter.db.ledger_tables import send_pauses, sends
from newsletter.providers.sendgrid.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    public_key_text,
    sign,
)
from tests.dispatch.conftest import SLUG, Pub, Serve, add_people
from tests.fake_sendgrid import FakeSendGrid, Request

BOUNCES = "hard bounces at 7.50% (15 of 200 handed over) are over bounce_pause 5%"
COMPLAINTS = "complaints at 1.00% (2 of 200 handed over) are over complaint_pause 0.1%"


class Held:
    """Mail send requests that wait (after arriving, before SendGrid's answer) until the test
    lets them go: `held[n]` is (arrived, go) for the n-th mail send request."""

    def __init__(self, fake: FakeSendGrid, numbers: tuple[int, ...]):
        self.count = itertools.count(1)
        self.events = {n: (threading.Event(), threading.Event()) for n in numbers}
        fake.route("POST", "/v3/mail/send", self.handle)

    def handle(self, fake: FakeSendGrid, request: Request):
        events = self.events.get(next(self.count))
        if events is not None:
            arrived, go = events
            arrived.set()
            go.wait(120)
        return FakeSendGrid._mail_send(fake, request)

    def __getitem__(self, number: int) -> tuple[threading.Event, threading.Event]:
        return self.events[number]


def _post(serve: Serve, key: ec.EllipticCurvePrivateKey, events: list[dict]) -> None:
    """What SendGrid's Event Webhook does: a signed POST; `serve` answers once stored."""
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    answer = httpx.post(f"{serve.base}/webhooks/sendgrid", content=body, timeout=30, headers={
        SIGNATURE_HEADER: sign(key, stamp, body), TIMESTAMP_HEADER: stamp,
        "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text


def _events(deliveries: list, kind: str, tag: str) -> list[dict]:
    """`kind` events (bounce, spamreport) for these deliveries, as SendGrid posts them, plus
    a delivered and an open event of each, which the guard does not count."""
    found = []
    for n, delivery in enumerate(deliveries):
        args = delivery.custom_args
        for event in (kind, "delivered", "open"):
            found.append({"email": delivery.email, "event": event, "timestamp": int(time.time()),
                          "sg_event_id": f"{tag}-{event}-{n}", "sg_message_id": f"m{n}.filter",
                          **args})
            if event == "bounce":
                found[-1].update(type="bounce", reason="550 5.1.1 unknown user")
    return found


def _row(pub: Pub):
    with pub.engine.connect() as conn:
        return conn.execute(select(sends)).one()


def _pauses(pub: Pub) -> list:
    with pub.engine.connect() as conn:
        return conn.execute(select(send_pauses).order_by(send_pauses.c.id)).all()


@pytest.mark.slow
def test_bounces_and_complaints_posted_to_serve_pause_a_sendgrid_send(
        pub: Pub, sendgrid: FakeSendGrid) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    config = pub.root / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "reputation: {min_sample: 200, "
                      "bounce_pause: 5%, complaint_pause: 0.1%}\n", encoding="utf-8")
    pub.env.update(SENDGRID_WEBHOOK_PUBLIC_KEY=public_key_text(key),
                   NEWSLETTER_SENDGRID_BATCH="100", NEWSLETTER_SENDGRID_IN_FLIGHT="1")
    people = add_people(pub.engine, 600)
    held = Held(sendgrid, (2, 4))
    with Serve(pub) as serve:
        proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "sendgrid",
                         "--yes")
        arrived, go = held[2]  # the second batch is at SendGrid: bounces of the first arrive
        assert arrived.wait(120), proc.communicate()
        _post(serve, key, _events(sendgrid.deliveries[:15], "bounce", "b"))
        go.set()
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, out + err
        assert "was paused by the reputation guard" in err and BOUNCES in err
        assert sendgrid.recipients() == Counter({p: 1 for p in people[:200]})
        row = _row(pub)
        assert (row.state, row.accepted, row.unknown) == ("stopped", 200, 0)
        assert row.paused_at is not None
        status = pub.cli("status", SLUG).output
        assert "paused by the reputation guard" in status and BOUNCES in status
        assert "hard bounces: 7.50% of 200 handed over (15); the guard pauses over 5%" in status
        assert f"bounced: {people[0]}" in status and "--resume" in status
        assert "15 bounces" in status  # the engagement counters agree

        plain = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
        assert plain.exit_code == 1 and "was paused by the reputation guard" in plain.output
        assert sum(sendgrid.recipients().values()) == 200

        proc = pub.spawn("send", SLUG, "--resume", "--yes")
        arrived, go = held[4]  # batch 4 is at SendGrid: complaints about batch 3 arrive
        assert arrived.wait(120), proc.communicate()
        _post(serve, key, _events(sendgrid.deliveries[200:202], "spamreport", "c"))
        go.set()
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, out + err
        assert COMPLAINTS in err  # judged from the resume on: 200 more handed over
        assert sendgrid.recipients() == Counter({p: 1 for p in people[:400]})

        finished = pub.cli("send", SLUG, "--resume", "--yes")
        assert finished.exit_code == 0, finished.output
    assert sendgrid.recipients() == Counter({p: 1 for p in people})
    first, second = _pauses(pub)
    assert (first.handed, first.hard, first.reason) == (200, 15, BOUNCES)
    assert (first.resumed_handed, first.resumed_hard) == (200, 15)
    assert (second.handed, second.complaints, second.reason) == (200, 2, COMPLAINTS)
    assert second.resumed_handed == 400 and second.resumed_complaints == 2
    row = _row(pub)
    assert row.state == "completed" and row.paused_at is None
    status = pub.cli("status", SLUG).output
    assert "hard bounces: 2.50% of 600 handed over (15)" in status
    assert "complaints: 0.33% of 600 handed over (2)" in status
    report = pub.cli("report", SLUG).output
    assert ("#1 via sendgrid: 600 handed over; hard bounces 2.50% (15); complaints 0.33% (2): "
            "over the guard's pause threshold; reached Gmail: aim under 0.1%; Gmail and Yahoo, "
            "bulk senders: stay under 0.3%") in report
