"""kill -9 at random points of a real `newsletter send`, then resume: exactly one each.

The sending process is `python -m newsletter send` in a subprocess, killed with SIGKILL while
it works (the moment is random: after a random number of accepted requests or written files,
plus a random few milliseconds). After each kill the ledger must be consistent: a batch that
was in flight is `unknown`. The outbox settles those itself (a file is there or not); for
SendGrid the test plays the operator, looking at the provider's log (the fake server) and
choosing --accept-batch or --resend-batch for each unknown batch, as docs/sending.md tells
people to.
"""

from __future__ import annotations

import email
import random
import re
import signal
import time
from collections.abc import Callable
from email import policy

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_recipients, sends
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_sendgrid import FakeSendGrid

# every test here kills or interrupts real `newsletter send` processes, round after round
pytestmark = pytest.mark.slow
KILLS = 3
TO = re.compile(rb"^To: .*?<?([^<>\s]+@[^<>\s]+)>?\r$", re.M)


def _kill_when(pub: Pub, args: list[str], ready: Callable[[], bool], rng: random.Random) -> bool:
    """Run `newsletter ARGS`, SIGKILL it once `ready()`; False if it finished first."""
    proc = pub.spawn(*args)
    deadline = time.monotonic() + 30
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.03))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    pub.settle()  # PostgreSQL may still be finishing a COMMIT the dead process had sent
    return True


def _ledger(pub: Pub) -> dict[str, str]:
    with pub.engine.connect() as conn:
        return dict(conn.execute(select(send_recipients.c.email, send_recipients.c.state)).all())


def _finish(pub: Pub, args: list[str], seed: int) -> None:
    """The last, uninterrupted run (unless a "killed" run had in fact just finished)."""
    with pub.engine.connect() as conn:
        if conn.execute(select(sends.c.state)).scalar_one() == "completed":
            return
    final = pub.spawn(*args)
    out, err = final.communicate(timeout=60)
    assert final.returncode == 0, f"seed {seed}: {out}{err}"


def _unknown_batches(pub: Pub) -> dict[int, list[str]]:
    with pub.engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.batch, send_recipients.c.email)
                            .where(send_recipients.c.state == "unknown")).all()
    found: dict[int, list[str]] = {}
    for batch, email_ in rows:
        found.setdefault(batch, []).append(email_)
    return found


def _check_counts(pub: Pub) -> None:
    """The counts kept on the send row agree with the recipient rows (one snapshot)."""
    options = {"isolation_level": "REPEATABLE READ"} if pub.db_url.startswith("postgres") else {}
    with pub.engine.connect().execution_options(**options) as conn, conn.begin():
        states = conn.execute(select(send_recipients.c.state)).scalars().all()
        row = conn.execute(select(sends)).one()
    assert (row.accepted, row.failed, row.unknown) == (
        states.count("accepted"), states.count("failed"), states.count("unknown"))


@pytest.mark.parametrize("in_flight", [2, 8])
def test_sigkill_during_a_sendgrid_send_then_resume(pub: Pub, sendgrid: FakeSendGrid,
                                                    in_flight: int) -> None:
    """Up to 2 (NEWSLETTER_SENDGRID_IN_FLIGHT) or 8 (sendgrid.max_in_flight's default)
    requests in flight when the kill lands."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    people = add_people(pub.engine, 1200 if in_flight == 2 else 2400)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "40"
    if in_flight != 8:
        pub.env["NEWSLETTER_SENDGRID_IN_FLIGHT"] = str(in_flight)
    sendgrid.delay = 0.01
    base = ["send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes"]
    flag: list[str] = []
    for _ in range(KILLS):
        before = len(sendgrid.sends())
        target = before + rng.randint(1, 6 * in_flight)
        if not _kill_when(pub, base + flag, lambda t=target: len(sendgrid.sends()) >= t, rng):
            break
        _check_counts(pub)
        with pub.engine.connect() as conn:
            if conn.execute(select(sends.c.state)).scalar_one() == "sending":  # not finished
                assert "interrupted (run the same `newsletter send` to resume)" in pub.cli(
                    "status", SLUG).output
        sendgrid.wait_idle()  # the request the killed process left behind is answered
        counts = sendgrid.recipients()
        assert max(counts.values(), default=1) == 1, f"seed {seed}: someone got it twice"
        # the operator's decision, batch by batch, from the provider's activity log
        flag = []
        for batch, emails in _unknown_batches(pub).items():
            assert len(emails) <= 40, f"seed {seed}: batch {batch} is larger than a request"
            got = {counts.get(e.lower(), 0) for e in emails}
            assert len(got) == 1, f"seed {seed}: one request, partly delivered?"
            flag += ["--accept-batch" if got == {1} else "--resend-batch", str(batch)]
        assert len(flag) <= 2 * in_flight, f"seed {seed}: more batches in flight than " \
                                           "requests at once"
    _finish(pub, base + flag, seed)
    counts = sendgrid.recipients()
    assert set(counts) == {p.lower() for p in people}, f"seed {seed}: someone was skipped"
    assert set(counts.values()) == {1}, f"seed {seed}: someone got it twice"
    assert set(_ledger(pub).values()) == {"accepted"}
    _check_counts(pub)
    assert sendgrid.peak <= in_flight, f"seed {seed}: more requests at once than allowed"
    print(f"sendgrid kill test: up to {in_flight} in flight, peak {sendgrid.peak} (seed {seed})")


def test_sigkill_during_an_outbox_send_then_resume(pub: Pub) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    people = add_people(pub.engine, 1000)
    folder = pub.outbox / SLUG / "1"
    args = ["send", SLUG, "--segment", "everyone", "--yes"]
    for _ in range(KILLS):
        done = len(list(folder.glob("*.eml"))) if folder.exists() else 0
        target = done + rng.randint(1, 300)
        if not _kill_when(pub, args, lambda t=target: folder.exists() and
                          len(list(folder.glob("*.eml"))) >= t, rng):
            break
        _check_counts(pub)
    _finish(pub, args, seed)
    files = sorted(folder.glob("*.eml"))
    assert not list(folder.glob(".*")), f"seed {seed}: half-written files left behind"
    found = []
    for path in files:
        data = path.read_bytes()
        assert data.endswith(b"--\r\n"), f"seed {seed}: {path.name} is cut short"
        found.append(TO.search(data).group(1).decode())
    assert sorted(found) == sorted(people), f"seed {seed}: not exactly one message each"
    for path in rng.sample(files, 20):  # and they are whole, well-formed messages
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg.get_body(("html",)).get_content().rstrip().endswith("</html>")
    assert set(_ledger(pub).values()) == {"accepted"}
    _check_counts(pub)


def test_ctrl_c_stops_after_the_batches_in_flight(pub: Pub, sendgrid: FakeSendGrid) -> None:
    people = add_people(pub.engine, 600)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "20"
    sendgrid.delay = 0.05
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    deadline = time.monotonic() + 120  # start-up (build, checks) is slow on a busy machine
    while len(sendgrid.sends()) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, out + err
    assert "stopping after the batch in flight" in err and "stopped: interrupted" in err
    ledger = _ledger(pub)
    assert "unknown" not in ledger.values()  # the batches in flight were answered and recorded
    accepted = {e for e, state in ledger.items() if state == "accepted"}
    assert accepted == set(sendgrid.recipients()) and 0 < len(accepted) < 600
    _check_counts(pub)
    resumed = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert resumed.exit_code == 0, resumed.output
    counts = sendgrid.recipients()
    assert set(counts) == {p.lower() for p in people} and set(counts.values()) == {1}
