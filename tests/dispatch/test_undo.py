"""The SendGrid undo window: scheduled batches, `send cancel`, and resumes that settle batches
of unknown fate by cancelling them at SendGrid and sending their recipients again.

The fake SendGrid keeps SendGrid's scheduled-send rules (cancel or pause only up to 10 minutes
before send_at, at most 10 batches cancelled or paused at once, cancelled messages discarded
at send_at), and `delivered()` says what each address would finally get.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_batches, send_recipients, sends
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_sendgrid import API_KEY, FakeSendGrid

KILLS = 3


def _states(pub: Pub) -> dict[str, str]:
    with pub.engine.connect() as conn:
        return dict(conn.execute(select(send_recipients.c.email, send_recipients.c.state)).all())


def test_an_undo_window_schedules_the_send_and_cancel_stops_it(
        pub: Pub, sendgrid: FakeSendGrid) -> None:
    people = add_people(pub.engine, 30)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "10"
    started = time.time()
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid",
                     "--undo-window", "15m", "--yes")
    assert result.exit_code == 0, result.output
    assert "Undo window: 15 minutes" in result.output
    batch_ids = {d.batch_id for d in sendgrid.deliveries}
    assert len(batch_ids) == 1 and None not in batch_ids  # one batch id per run
    send_at = {d.send_at for d in sendgrid.deliveries}.pop()
    assert started + 25 * 60 - 5 <= send_at <= time.time() + 25 * 60 + 5  # window + 10 min
    assert set(sendgrid.delivered()) == {p.lower() for p in people}
    cancelled = pub.cli("send", "cancel", SLUG, "--yes")
    assert cancelled.exit_code == 0, cancelled.output
    assert sendgrid.batches[batch_ids.pop()] == "cancel"
    assert not sendgrid.delivered()  # discarded at send_at
    assert set(_states(pub).values()) == {"failed"}
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.state)).scalar_one() == "cancelled"
    # nobody received it, so a later send of the issue reaches everyone once
    again = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert again.exit_code == 0, again.output
    assert sendgrid.delivered() == {p.lower(): 1 for p in people}


def test_cancel_is_refused_when_sendgrid_no_longer_can(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 5)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid",
                     "--undo-window", "1m", "--yes")
    assert result.exit_code == 0, result.output
    batch_id = sendgrid.deliveries[0].batch_id
    sendgrid.clock = lambda: time.time() + 120  # past the window at SendGrid: < 10 min to go
    assert sendgrid.delivered()  # still going out
    late = pub.cli("send", "cancel", SLUG, "--yes")
    assert late.exit_code == 1, late.output
    assert "up to 10 minutes before its send_at" in late.output  # SendGrid's own refusal
    assert sendgrid.batches[batch_id] == ""
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.state)).scalar_one() == "completed"
    assert set(_states(pub).values()) == {"accepted"}


def test_the_fake_allows_ten_cancelled_batches_at_once(sendgrid: FakeSendGrid) -> None:
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient(api_key=API_KEY, host=sendgrid.url).client
    ids = [__import__("json").loads(client.mail.batch.post().body)["batch_id"]
           for _ in range(11)]
    for batch_id in ids[:10]:
        client.user.scheduled_sends.post(request_body={"batch_id": batch_id, "status": "pause"})
    try:
        client.user.scheduled_sends.post(request_body={"batch_id": ids[10], "status": "cancel"})
        raise AssertionError("an 11th batch was cancelled")
    except HTTPError as exc:
        assert exc.status_code == 400 and b"10 different batches" in exc.body


@pytest.mark.slow
@pytest.mark.parametrize("in_flight", [4, 8])
def test_sigkill_during_an_undo_window_send_then_resume(pub: Pub, sendgrid: FakeSendGrid,
                                                        in_flight: int) -> None:
    """Up to four (NEWSLETTER_SENDGRID_IN_FLIGHT) or eight (sendgrid.max_in_flight) requests
    in flight, killed at random moments; each resume cancels exactly the batches of unknown
    fate and resends their recipients: each person gets it once."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    people = add_people(pub.engine, 1200 if in_flight == 4 else 2400)
    config = pub.root / "newsletter.yaml"  # the undo window from newsletter.yaml
    config.write_text(config.read_text().replace("sendgrid: {categories: [weekly]}",
                                                 "sendgrid: {categories: [weekly], "
                                                 f"undo_window: 15m, max_in_flight: {in_flight}}}"))
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "40"
    if in_flight == 4:
        pub.env["NEWSLETTER_SENDGRID_IN_FLIGHT"] = "4"  # the environment overrides the file
        config.write_text(config.read_text().replace("max_in_flight: 4", "max_in_flight: 1"))
    sendgrid.delay = 0.02
    args = ["send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes"]
    kills = cancelled_total = 0
    for _ in range(KILLS):
        target = len(sendgrid.sends()) + rng.randint(1, 5 * in_flight)
        proc = pub.spawn(*args)
        deadline = time.monotonic() + 60
        while (proc.poll() is None and len(sendgrid.sends()) < target
               and time.monotonic() < deadline):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        pub.settle()  # PostgreSQL may still be finishing a COMMIT the dead process had sent
    final = pub.spawn(*args)
    out, err = final.communicate(timeout=120)
    with pub.engine.connect() as conn:
        state = conn.execute(select(sends.c.state)).scalar_one()
        runs = conn.execute(select(send_batches.c.batch_id, send_batches.c.state)).all()
    if state != "completed":  # the last kill had landed just after the end
        assert final.returncode == 0, f"seed {seed}: {out}{err}"
    sendgrid.wait_idle()
    cancelled = {b for b, s in runs if s == "cancelled"}
    cancelled_total = len(cancelled)
    assert cancelled == {b for b, s in sendgrid.batches.items() if s == "cancel"}, seed
    delivered = sendgrid.delivered()
    assert set(delivered) == {p.lower() for p in people}, f"seed {seed}: someone was skipped"
    assert set(delivered.values()) == {1}, f"seed {seed}: someone got it twice"
    assert set(_states(pub).values()) == {"accepted"}, f"seed {seed}: unknown left"
    for d in sendgrid.deliveries:  # nothing was sent outside the undo window's batches
        assert d.batch_id and d.send_at
    assert 1 < sendgrid.peak <= in_flight, f"seed {seed}: peak {sendgrid.peak} in flight"
    print(f"undo-window kill test: {kills} kills, {cancelled_total} batches cancelled, "
          f"{len(people)} recipients, up to {in_flight} in flight (peak {sendgrid.peak}), "
          f"duplicates 0, unknown left 0 (seed {seed})")
