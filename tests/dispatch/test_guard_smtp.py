"""The reputation guard on SMTP sends: a real aiosmtpd server refuses a burst of addresses with
550, and the send pauses on its own at the threshold; a plain re-run refuses, `send --resume`
finishes it (by the thresholds newsletter.yaml has then), `send cancel` gives it up. A kill -9
at the pause or during the resume loses nothing and sends nothing twice. On SQLite and
PostgreSQL.

The sample: 120 people, `reputation: {min_sample: 20, bounce_pause: 5%}`, SMTP batches of 10
(the guard judges before each). People 40-44 are refused: before the sixth batch 5 of 50
messages handed over were refused (10%), and the send pauses with exactly 50 handed over.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_pauses, sends
from tests.dispatch.conftest import SLUG, Pub, add_people, kill_when, ledger_states

GUARD = "reputation: {min_sample: 20, bounce_pause: 5%, complaint_pause: 0.1%}\n"
REASON = "hard bounces at 10.00% (5 of 50 handed over) are over bounce_pause 5%"


def _configure(pub: Pub, text: str = GUARD) -> None:
    config = pub.root / "newsletter.yaml"
    lines = [line for line in config.read_text(encoding="utf-8").splitlines(keepends=True)
             if not line.startswith("reputation:")]
    config.write_text("".join(lines) + text, encoding="utf-8")


def _send(pub: Pub, *extra: str):
    return pub.cli("send", SLUG, "--transport", "smtp", "--yes", *extra)


def _send_row(pub: Pub):
    with pub.engine.connect() as conn:
        return conn.execute(select(sends)).one()


def _pauses(pub: Pub) -> list:
    with pub.engine.connect() as conn:
        return conn.execute(select(send_pauses).order_by(send_pauses.c.id)).all()


def _received(server) -> Counter[str]:
    return Counter(rcpts[0] for _, rcpts, _ in server.mailbox.messages)


@pytest.fixture()
def burst(pub: Pub, smtp_server):
    """(server, people, refused): the server answers 550 to people 40-44."""
    _configure(pub)
    server = smtp_server("plain")
    people = add_people(pub.engine, 120)
    refused = set(people[40:45])
    server.mailbox.refuse_rcpt = set(refused)
    return server, people, refused


def _paused_at_the_threshold(pub: Pub, server, people: list[str], refused: set[str],
                             result) -> None:
    assert result.exit_code == 1, result.output
    assert "was paused by the reputation guard" in result.output and REASON in result.output
    assert f"newsletter send {SLUG} --resume" in result.output
    assert f"newsletter send cancel {SLUG}" in result.output
    assert set(_received(server)) == set(people[:50]) - refused  # nothing after the pause
    row = _send_row(pub)
    assert row.state == "stopped" and row.paused_at is not None
    assert (row.accepted, row.failed, row.unknown) == (45, 5, 0)
    [pause] = _pauses(pub)
    assert (pause.handed, pause.hard, pause.complaints, pause.reason) == (50, 5, 0, REASON)
    assert (pause.min_sample, pause.bounce_pause, pause.resumed_at) == (20, 0.05, None)


@pytest.mark.slow
def test_a_burst_of_550s_pauses_the_send_and_resume_finishes_it(pub: Pub, burst) -> None:
    server, people, refused = burst
    _paused_at_the_threshold(pub, server, people, refused,
                             _send(pub, "--segment", "everyone"))
    status = pub.cli("status", SLUG).output
    assert "paused by the reputation guard (since" in status
    assert ("hard bounces: 10.00% of 50 handed over (5; 5 refused by the server); the guard "
            "pauses over 5%; Amazon SES: reviews an account at 5%, pauses an account at 10%"
            in status)
    assert f"paused {_send_row(pub).paused_at:%Y-%m-%d %H:%M} UTC: {REASON}" in status
    assert "to go on: look at who bounced or complained" in status
    assert f"`newsletter send {SLUG} --resume`" in status
    assert "failed: " + sorted(refused)[0] in status
    assert "paused" in pub.cli("issues").output

    again = _send(pub, "--segment", "everyone")  # a plain re-run does not resume it
    assert again.exit_code == 1 and "was paused by the reputation guard" in again.output
    assert set(_received(server)) == set(people[:50]) - refused

    resumed = _send(pub, "--resume")  # the send's own segment
    assert resumed.exit_code == 0, resumed.output
    assert "resume send #1, paused by the reputation guard" in resumed.output
    assert "completed via smtp with failures: 115 of 120 accepted, 5 failed" in resumed.output
    assert _received(server) == Counter({p: 1 for p in people if p not in refused})
    assert {p: s for p, s in ledger_states(pub).items() if s != ["accepted"]} == {
        p: ["failed"] for p in refused}
    row = _send_row(pub)
    assert row.state == "completed" and row.paused_at is None
    [pause] = _pauses(pub)
    assert pause.resumed_at is not None and (pause.resumed_handed, pause.resumed_hard) == (50, 5)
    status = pub.cli("status", SLUG).output
    assert f"{REASON}; resumed" in status and "hard bounces: 4.17% of 120 handed over" in status
    _reported(pub)


def _reported(pub: Pub) -> None:
    """`newsletter report` shows the send's health beside the limits: text, JSON, CSV and
    report.html. Without a bounce mailbox an SMTP send knows only its own refusals."""
    import csv
    import io
    import json

    text = pub.cli("report", SLUG).output
    assert ("#1 via smtp: 120 handed over; hard bounces 4.17% (5; 5 refused by the server); "
            "complaints not measured: at half of a pause threshold or more") in text
    assert "only the refusals of the hand-over are known" in text
    assert ("limits: complaints: the guard pauses over 0.1%; Gmail: aim under 0.1%; Gmail and "
            "Yahoo, bulk senders: stay under 0.3%") in text
    [health] = json.loads(pub.cli("report", SLUG, "--format", "json").stdout)["health"]
    assert health["handed"] == 120 and health["hard_bounces"] == 5 and health["refused"] == 5
    assert health["complaints"] is None and health["verdict"] == "warning"
    assert health["bounce_rate"] == pytest.approx(5 / 120)
    rows = list(csv.DictReader(io.StringIO(pub.cli("report", SLUG, "--format", "csv").stdout)))
    [send] = [row for row in rows if row["kind"] == "send"]
    assert (send["handed_over"], send["hard_bounces"], send["complaints"], send["health"]) == (
        "120", "5", "not measured", "warning")
    assert all(row["handed_over"] == "" for row in rows if row["kind"] != "send")
    page = (pub.root / "dist" / SLUG / "report.html").read_text(encoding="utf-8")
    from lxml import html as lxml_html

    table = lxml_html.fromstring(page).get_element_by_id("health")
    cells = [" ".join(td.text_content().split()) for td in table.xpath(".//tr[2]/td")]
    assert cells[:5] == ["#1", "smtp", "120", "5 (5 refused)", "4.17%"]
    assert cells[5] == "not measured" and cells[-1] == "at half of a pause threshold or more"


@pytest.mark.slow
def test_resume_after_the_thresholds_were_raised(pub: Pub, burst) -> None:
    """The pause stands until `--resume`, whatever the thresholds; the resumed run judges the
    rest of the send (from the totals at the resume) by the thresholds newsletter.yaml has
    then: 3 more refusals in the next 30 messages (10%) pass 20%'s half, not 20%."""
    server, people, refused = burst
    _paused_at_the_threshold(pub, server, people, refused,
                             _send(pub, "--segment", "everyone"))
    later = set(people[70:73])
    server.mailbox.refuse_rcpt |= later
    _configure(pub, "reputation: {min_sample: 20, bounce_pause: 20%}\n")
    refused_again = _send(pub, "--segment", "everyone")
    assert refused_again.exit_code == 1 and "was paused" in refused_again.output
    resumed = _send(pub, "--resume", "--segment", "everyone")
    assert resumed.exit_code == 0, resumed.output
    assert ("warning: hard bounces at 10.00% (3 of 30 handed over) have reached half of "
            "bounce_pause 20%") in resumed.output
    assert _received(server) == Counter({p: 1 for p in people if p not in refused | later})
    assert len(_pauses(pub)) == 1  # under 5% it would have paused again


@pytest.mark.slow
def test_a_paused_send_given_up(pub: Pub, burst) -> None:
    """`send cancel` gives a paused send up like any stopped one; a new send of the issue
    mails whoever the cancelled one never handed the issue to, and nobody twice."""
    server, people, refused = burst
    _paused_at_the_threshold(pub, server, people, refused,
                             _send(pub, "--segment", "everyone"))
    cancelled = pub.cli("send", "cancel", SLUG, "--yes")
    assert cancelled.exit_code == 0, cancelled.output
    assert _send_row(pub).state == "cancelled"
    status = pub.cli("status", SLUG).output
    assert "cancelled" in status and REASON in status and "to go on" not in status
    nothing = _send(pub, "--resume")
    assert nothing.exit_code == 2
    assert "no paused or stopped send of 2026-11-24 to resume (send #1 was cancelled)" in \
        nothing.output
    server.mailbox.refuse_rcpt = set()
    fresh = _send(pub, "--segment", "everyone")
    assert fresh.exit_code == 0, fresh.output
    assert "5 failed for good in an earlier send" in fresh.output
    assert _received(server) == Counter({p: 1 for p in people if p not in refused})


@pytest.mark.slow
def test_kill_at_the_pause_and_during_the_resume(pub: Pub, burst) -> None:
    """A kill -9 as the pause is recorded leaves a paused send (the plain re-run refuses it);
    a kill -9 of the resumed run leaves a resumed one: the resume holds, a plain re-run
    finishes it, and the one message in flight is settled as for any crash."""
    server, people, refused = burst
    with pub.engine.connect() as conn:
        before = conn.execute(select(sends.c.id)).all()
    assert before == []
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "smtp", "--yes")

    def paused() -> bool:
        with pub.engine.connect() as conn:
            return conn.execute(select(sends.c.paused_at)).scalar() is not None

    kill_when(pub, proc, paused)
    assert paused() and len(_pauses(pub)) == 1
    refused_run = _send(pub, "--segment", "everyone")
    assert refused_run.exit_code == 1 and "was paused by the reputation guard" in \
        refused_run.output
    server.mailbox.gate_at = server.mailbox.datas + 20  # hold the 20th message of the resume
    proc = pub.spawn("send", SLUG, "--resume", "--yes")
    assert server.mailbox.at_gate.wait(120), proc.communicate()
    assert kill_when(pub, proc, lambda: True)
    server.mailbox.gate.set()
    row = _send_row(pub)
    assert row.paused_at is None and row.unknown == 1  # resumed; one message in flight
    finished = _send(pub, "--segment", "everyone", "--resend-unknown")
    assert finished.exit_code == 0, finished.output
    assert _received(server) == Counter({p: 1 for p in people if p not in refused})
    assert _pauses(pub)[0].resumed_at is not None


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(2))
def test_two_resumes_at_once_send_once(pub: Pub, burst, round_: int) -> None:
    """Two `send --resume` processes at once: one takes the send, the other refuses (or finds
    it done); every person gets the issue once."""
    server, people, refused = burst
    _paused_at_the_threshold(pub, server, people, refused,
                             _send(pub, "--segment", "everyone"))
    procs = [pub.spawn("send", SLUG, "--resume", "--transport", "smtp", "--yes")
             for _ in range(2)]
    outcomes = [proc.communicate(timeout=180) + (proc.returncode,) for proc in procs]
    codes = sorted(code for _, _, code in outcomes)
    assert codes[0] == 0, outcomes
    for out, err, code in outcomes:  # the other: refused while it runs, or finds it done
        assert (code == 0 and ("completed via smtp" in out or "nothing to resume: send #1" in err
                               or "completed meanwhile" in err)) or "is under way" in err, err
    assert _received(server) == Counter({p: 1 for p in people if p not in refused})
    assert _send_row(pub).state == "completed"
    [pause] = _pauses(pub)
    assert pause.resumed_at is not None and pause.resumed_at <= dt.datetime.now(dt.UTC)
