"""A subject test through real `newsletter send` processes against the fake SendGrid, on each
database: kill -9 while the first subject goes out, between the subjects, while the second goes
out and while the winner goes to the rest, each time resumed by running `send` again (the
operator settling a batch of unknown fate from SendGrid's log, as docs/sending.md says), with
one of the rest unsubscribing and one erased meanwhile; and two test runs started at once.
Afterwards each person holds exactly one message (the sample its subject, the rest the
winner), but the two who left, who hold none."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import subject_tests
from newsletter.events import optin
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.dispatch.test_subject_tests import TEST, A, B, arms, decision_due, subjects_received
from tests.fake_sendgrid import FakeSendGrid

pytestmark = pytest.mark.slow


def _kill_when(pub: Pub, args: list[str], ready) -> bool:
    """Run `newsletter ARGS`; SIGKILL it once `ready()`; False if it finished first."""
    proc = pub.spawn(*args)
    deadline = time.monotonic() + 240
    while proc.poll() is None and not ready():
        assert time.monotonic() < deadline, "the send never got there"
        time.sleep(0.005)
    if proc.poll() is not None:
        out, err = proc.communicate()
        assert proc.returncode == 0, out + err
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    pub.settle()
    return True


def _settle(pub: Pub, sendgrid: FakeSendGrid) -> list[str]:
    """The operator's decision on batches of unknown fate, from the provider's log."""
    sendgrid.wait_idle()
    counts = sendgrid.recipients()
    with pub.engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.batch, send_recipients.c.email)
                            .where(send_recipients.c.state == "unknown")).all()
    batches: dict[int, set[int]] = {}
    for batch, address in rows:
        batches.setdefault(batch, set()).add(counts.get(address.lower(), 0))
    flags = []
    for batch, got in batches.items():
        assert len(got) == 1, "one request, partly delivered?"
        flags += ["--accept-batch" if got == {1} else "--resend-batch", str(batch)]
    return flags


def _sends_of(pub: Pub, part: str) -> list[str]:
    with pub.engine.connect() as conn:
        return list(conn.execute(select(sends.c.state).where(
            sends.c.segment == f"everyone (subject test 1: {part})")).scalars())


def test_kill_9_at_each_stage_of_a_subject_test(pub: Pub, sendgrid: FakeSendGrid) -> None:
    rng = random.Random()
    people = add_people(pub.engine, 480)  # 120 per subject, 240 for the rest
    pub.env.update(NEWSLETTER_SENDGRID_BATCH="20", NEWSLETTER_SENDGRID_IN_FLIGHT="2")
    sendgrid.delay = 0.01
    go_on = ["send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes"]
    stages = [  # (what the kill lands in, when)
        ("subject A", lambda: len(sendgrid.sends()) >= rng.randint(1, 4)),
        ("between the subjects", lambda: _sends_of(pub, "A") == ["completed"]),
        ("subject B", lambda: len(sendgrid.sends()) >= 6 + rng.randint(1, 4)),
    ]
    flags: list[str] = []
    for index, (_, ready) in enumerate(stages):
        args = TEST if index == 0 else go_on + flags
        _kill_when(pub, args, ready)
        flags = _settle(pub, sendgrid)
        assert max(sendgrid.recipients().values()) == 1
        if index == 0:  # between kills: one of the rest unsubscribes, one is erased
            rest = [p for p in people if p.lower() not in arms(pub)]
            optin.unsubscribe_address(pub.engine, rest[0])
            assert pub.cli("subscribers", "forget", rest[1], "--yes").exit_code == 0
            gone = {rest[0].lower(), rest[1].lower()}
    finished = pub.cli(*go_on, *flags)
    assert finished.exit_code == 0, finished.output
    assert "the decision is due at" in finished.output
    decision_due(pub)
    _kill_when(pub, go_on, lambda: len(sendgrid.sends()) >= 12 + rng.randint(1, 8))  # the rest
    flags = _settle(pub, sendgrid)
    done = pub.cli(*go_on, *flags)
    assert done.exit_code == 0, done.output
    with pub.engine.connect() as conn:
        assert conn.execute(select(subject_tests.c.state)).scalar_one() == "done"
    assert sendgrid.recipients() == Counter({p.lower(): 1 for p in people
                                             if p.lower() not in gone})  # once each
    got, drawn = subjects_received(sendgrid), arms(pub)
    assert Counter(drawn.values()) == {0: 120, 1: 120}
    assert {a: s for a, s in got.items() if a in drawn} == {
        a: [(A, B)[arm]] for a, arm in drawn.items()}
    assert {tuple(s) for a, s in got.items() if a not in drawn} == {(A,)}  # no clicks: A


def test_two_test_runs_at_once_make_one_test(pub: Pub, sendgrid: FakeSendGrid) -> None:
    people = add_people(pub.engine, 200)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "20"
    runs = [pub.spawn(*TEST), pub.spawn(*TEST)]
    outcomes = [(proc.communicate(timeout=300), proc.returncode) for proc in runs]
    assert 0 in [code for _, code in outcomes], outcomes
    for (out, err), code in outcomes:
        assert code == 0 or "is under way" in err or "was being made" in err, out + err
    carried = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert carried.exit_code == 0, carried.output
    with pub.engine.connect() as conn:
        assert len(conn.execute(select(subject_tests)).all()) == 1
    decision_due(pub)
    done = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert done.exit_code == 0, done.output
    assert sendgrid.recipients() == Counter({p.lower(): 1 for p in people})
    assert Counter(arms(pub).values()) == {0: 50, 1: 50}
