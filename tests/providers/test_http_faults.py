"""Postmark and Mailgun under faults: kill -9 mid-send and resume (exactly one each), and
per-recipient refusals that stay per-recipient, as tests/dispatch/test_crash.py and
test_faults.py check for SendGrid."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import select, update

from newsletter.db.ledger_tables import send_recipients
from newsletter.db.tables import subscribers
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.dispatch.test_crash import KILLS, _check_counts, _finish, _kill_when, _unknown_batches
from tests.dispatch.test_faults import HOSTILE, _check_settled, _hostile_people
from tests.providers.conftest import Rig


def _ledger(pub: Pub) -> dict[str, tuple[str, str | None]]:
    with pub.engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.email, send_recipients.c.state,
                                   send_recipients.c.last_error)).all()
    return {r.email: (r.state, r.last_error) for r in rows}


@pytest.mark.slow
def test_sigkill_during_a_send_then_resume(pub: Pub, rig: Rig) -> None:
    """Up to 3 requests in flight when the kill lands; the operator settles unknown batches
    from the provider's log (the fake), as docs/sending.md says."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    people = add_people(pub.engine, 1200)
    pub.env[rig.batch_env] = "40"
    pub.env[rig.in_flight_env] = "3"
    rig.fake.delay = 0.01
    base = ["send", SLUG, "--segment", "everyone", "--transport", rig.name, "--yes"]
    flag: list[str] = []
    for _ in range(KILLS):
        target = len(rig.fake.sends()) + rng.randint(1, 15)
        if not _kill_when(pub, base + flag, lambda t=target: len(rig.fake.sends()) >= t, rng):
            break
        _check_counts(pub)
        rig.fake.wait_idle()  # the request the killed process left behind is answered
        counts = rig.fake.recipients()
        assert max(counts.values(), default=1) == 1, f"seed {seed}: someone got it twice"
        flag = []
        for batch, emails in _unknown_batches(pub).items():
            assert len(emails) <= 40, f"seed {seed}: batch {batch} is larger than a request"
            got = {counts.get(e.lower(), 0) for e in emails}
            assert len(got) == 1, f"seed {seed}: one request, partly delivered?"
            flag += ["--accept-batch" if got == {1} else "--resend-batch", str(batch)]
        assert len(flag) <= 2 * 3, f"seed {seed}: more batches in flight than requests at once"
    _finish(pub, base + flag, seed)
    counts = rig.fake.recipients()
    assert set(counts) == {p.lower() for p in people}, f"seed {seed}: someone was skipped"
    assert set(counts.values()) == {1}, f"seed {seed}: someone got it twice"
    assert set(state for state, _ in _ledger(pub).values()) == {"accepted"}
    _check_counts(pub)
    assert rig.fake.peak <= 3, f"seed {seed}: more requests at once than allowed"


def test_hostile_data(pub: Pub, rig: Rig) -> None:
    """Each hostile address gets one message or a stated failure; Postmark refuses an address
    with a non-ASCII local part by its own patterns (ErrorCode 300), for that recipient only."""
    ordinary = _hostile_people(pub)
    result = rig.send(pub, SLUG, "--segment", "everyone")
    may_fail = {"jörg@example.org"} if rig.name == "postmark" else set()
    _check_settled(pub, result, ordinary, rig.fake.recipients(), may_fail)
    names = {d.email: d.name for d in rig.fake.deliveries}
    assert names["crlf@example.org"] == "Line Break"
    assert names["comma@example.org"] == "Doe, Jane; Jr."  # quoted, not mangled
    assert names["quotes@example.org"] == '"Quoted" \'name\' <b>markup</b> & more'
    if rig.name == "postmark":
        state, reason = _ledger(pub)["jörg@example.org"]
        assert state == "failed" and "Invalid 'To' address" in (reason or "")
    assert len(HOSTILE) + 12 == len(_ledger(pub))


def test_postmark_per_message_refusals_fail_only_their_recipient(pub: Pub, postmark) -> None:
    people = add_people(pub.engine, 12)
    inactive, invalid = people[3], "dots..twice@example.org"
    postmark.inactive.add(inactive.lower())
    add_people(pub.engine, 1, domain="x")  # a row to copy, then an address ours let in
    with pub.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.email == "reader000000@x")
                     .values(email=invalid, email_key=invalid))
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "postmark", "--yes")
    assert result.exit_code == 0, result.output
    assert "completed via postmark with failures: 11 of 13 accepted, 2 failed" in result.output
    ledger = _ledger(pub)
    assert ledger[inactive][0] == "failed" and "inactive recipient (406)" in ledger[inactive][1]
    assert ledger[invalid][0] == "failed" and "invalid address (300)" in ledger[invalid][1]
    assert len(postmark.sends()) == 1  # one batch: the others were taken in the same request
    assert set(postmark.recipients()) == {p.lower() for p in people} - {inactive.lower()}


def test_postmark_refusal_every_message_meets_stops_the_send(pub: Pub, postmark) -> None:
    add_people(pub.engine, 5)
    postmark.senders = {"someone-else@example.org"}
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "postmark", "--yes")
    assert result.exit_code == 1
    assert "Postmark refused the message (ErrorCode 400)" in result.output
    assert "is not a Sender Signature" in result.output
    assert {state for state, _ in _ledger(pub).values()} == {"pending"}


def test_mailgun_finds_the_address_it_refused_without_naming_it(pub: Pub, mailgun) -> None:
    people = add_people(pub.engine, 64)
    bad = people[37]
    mailgun.bad_addresses.add(bad.lower())
    pub.env["NEWSLETTER_MAILGUN_IN_FLIGHT"] = "1"
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "mailgun", "--yes")
    assert result.exit_code == 0, result.output
    assert "completed via mailgun with failures: 63 of 64 accepted, 1 failed" in result.output
    state, reason = _ledger(pub)[bad]
    assert state == "failed" and "'to' parameter is not a valid address" in (reason or "")
    assert set(mailgun.recipients()) == {p.lower() for p in people} - {bad.lower()}
    statuses = Counter(s for s, _ in mailgun.sends())
    assert statuses[400] <= 7 and statuses[200] <= 7  # halving: about log2(64) requests each


def test_mailgun_address_named_in_the_refusal_fails_at_once(pub: Pub, mailgun) -> None:
    people = add_people(pub.engine, 10)
    mailgun.answer(400, {"message": f"'to' parameter is not a valid address: {people[4]}"})
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "mailgun", "--yes")
    assert result.exit_code == 0, result.output
    assert _ledger(pub)[people[4]][0] == "failed"
    assert [s for s, _ in mailgun.sends()] == [400, 200]


def test_mailgun_other_400s_stop_with_mailguns_words(pub: Pub, mailgun) -> None:
    add_people(pub.engine, 5)
    mailgun.answer(400, {"message": "from parameter is not a valid address. please check "
                                    "documentation"})
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "mailgun", "--yes")
    assert result.exit_code == 1
    assert "Mailgun rejected the request (400): from parameter is not a valid" in result.output
    assert len(mailgun.sends()) == 1
