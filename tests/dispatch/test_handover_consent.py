"""Consent at hand-over: whoever unsubscribes (one click through a running `serve`), pauses
(through the preference page) or is erased after a send started is not mailed by it, between a
kill and the resume and while the send runs; they are recorded `skipped`, with the reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_recipients, sends
from tests.dispatch.conftest import SLUG, Pub, Serve, add_people, family_mail, kill_when


def _skipped(pub: Pub) -> dict[str, str]:
    with pub.engine.connect() as conn:
        return dict(conn.execute(select(send_recipients.c.email, send_recipients.c.last_error)
                                 .where(send_recipients.c.state == "skipped")).all())


@pytest.mark.slow
def test_unsubscribe_and_pause_between_a_kill_and_the_resume(pub: Pub) -> None:
    people = add_people(pub.engine, 1500)
    folder = pub.outbox / SLUG / "1"
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--yes")
    assert kill_when(pub, proc, lambda: folder.exists() and len(list(folder.glob("*.eml"))) >= 20)
    with pub.engine.connect() as conn:
        pending = conn.execute(select(send_recipients.c.email).where(
            send_recipients.c.state == "pending").order_by(send_recipients.c.id)).scalars().all()
    leaving, pausing = pending[-1], pending[-2]
    with Serve(pub) as serve:
        serve.one_click(leaving)
        serve.pause(pausing)
    resumed = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert resumed.exit_code == 0, resumed.output
    got = family_mail(pub)
    assert leaving not in got and pausing not in got
    assert got == {p: ["en"] for p in people if p not in (leaving, pausing)}
    assert "1 will be skipped: unsubscribed since the send started" in resumed.output
    assert "1 will be skipped: paused" in resumed.output
    skipped = _skipped(pub)
    assert skipped[leaving] == "unsubscribed since the send started"
    assert skipped[pausing].startswith("paused until ")
    status = pub.cli("status", SLUG).output
    assert "2 skipped" in status and "skipped: 1 unsubscribed since the send started" in status
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.state, sends.c.skipped)).one() == ("completed", 2)


@pytest.mark.slow
def test_unsubscribe_pause_and_erasure_while_a_send_runs(pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    people = add_people(pub.engine, 30)
    server.mailbox.gate_at = 5  # the fifth message waits at DATA until the test lets it go
    leaving, pausing, erased = people[20], people[25], people[28]
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes")
    try:
        assert server.mailbox.at_gate.wait(120), proc.communicate()
        with Serve(pub) as serve:
            serve.one_click(leaving)
            serve.pause(pausing)
        forget = pub.cli("subscribers", "forget", erased, "--yes")
        assert forget.exit_code == 0, forget.output
    finally:
        server.mailbox.gate.set()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    got = family_mail(pub, server)
    assert got == {p: ["en"] for p in people if p not in (leaving, pausing, erased)}
    skipped = _skipped(pub)
    assert skipped[leaving] == "unsubscribed since the send started"
    assert skipped[pausing].startswith("paused until ")
    assert list(skipped.values()).count("no longer a subscriber (erased)") == 1
    assert "3 skipped" in out
