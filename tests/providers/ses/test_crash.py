"""kill -9 during a real `newsletter send --transport ses`, then resume: exactly one each.

As tests/dispatch/test_crash.py does for SendGrid: the send runs in its own process and is
killed at a random moment while requests are in flight. A request in flight is `unknown`;
the test plays the operator, reading SES's side (moto's log of accepted messages) and
choosing --accept-batch or --resend-batch for each unknown batch (one recipient each), as
docs/providers/ses.md tells people to.
"""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from newsletter.db.ledger_tables import send_recipients, sends
from tests.dispatch.conftest import Pub, add_people
from tests.dispatch.test_crash import _check_counts, _finish, _kill_when, _unknown_batches
from tests.fake_ses import FakeSes
from tests.providers.ses.test_send import SEND

pytestmark = pytest.mark.slow
KILLS = 3


def test_sigkill_during_an_ses_send_then_resume(ses_pub: Pub, ses: FakeSes) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    people = add_people(ses_pub.engine, 400)
    ses.delay = 0.02  # a few requests in flight at any moment
    flag: list[str] = []
    for _ in range(KILLS):
        target = ses.message_count() + rng.randint(1, 60)
        if not _kill_when(ses_pub, SEND + flag, lambda t=target: ses.message_count() >= t, rng):
            break
        _check_counts(ses_pub)
        ses.wait_idle()  # what the dead process left in flight has reached SES (or not)
        counts = ses.recipients()
        assert max(counts.values(), default=1) == 1, f"seed {seed}: someone got it twice"
        flag = []
        unknown = _unknown_batches(ses_pub)
        for batch, emails in unknown.items():
            assert len(emails) == 1, f"seed {seed}: batch {batch} holds {len(emails)}"
            taken = counts.get(emails[0].lower(), 0)
            flag += ["--accept-batch" if taken else "--resend-batch", str(batch)]
        with ses_pub.engine.connect() as conn:
            state = conn.execute(select(sends.c.state)).scalar_one()
        assert len(unknown) <= 50 and (state != "completed" or not unknown), f"seed {seed}"
    _finish(ses_pub, SEND + flag, seed)
    counts = ses.recipients()
    assert set(counts) == {p.lower() for p in people}, f"seed {seed}: someone was skipped"
    assert set(counts.values()) == {1}, f"seed {seed}: someone got it twice"
    with ses_pub.engine.connect() as conn:
        states = set(conn.execute(select(send_recipients.c.state)).scalars())
    assert states == {"accepted"}
    _check_counts(ses_pub)
    print(f"ses kill test: peak {ses.peak} requests at once (seed {seed})")
