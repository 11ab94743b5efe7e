"""One send of an issue at a time, enforced by the database; a fenced lease; once per person.

Concurrency is tested with real processes (`python -m newsletter send`) started together,
round after round, on SQLite and PostgreSQL, and with threads racing on the ledger directly
(each with its own database connection). Every round counts the messages each subscriber got.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import delete, select, true, update

from newsletter.db import open_database
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.dispatch.ledger import LeaseLost, Ledger, SendBusy
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_sendgrid import FakeSendGrid

ROUNDS = 2  # per database; each round starts PROCESSES sends of the same issue at once
PROCESSES = 4
TO = re.compile(rb"^To: .*?<?([^<>\s]+@[^<>\s]+)>?\r$", re.M)


def _delivered(outbox: Path) -> Counter[str]:
    """How many messages each address has in the outbox, over every send folder."""
    found: Counter[str] = Counter()
    for path in outbox.glob(f"{SLUG}/*/*.eml"):
        found[TO.search(path.read_bytes()).group(1).decode()] += 1
    return found


def _reset(pub: Pub) -> None:
    """Forget every send (a new round starts from an issue nobody received)."""
    with pub.engine.begin() as conn:
        conn.execute(delete(send_recipients))
        conn.execute(delete(sends))
    shutil.rmtree(pub.outbox, ignore_errors=True)


def _outcome_ok(code: int, out: str, err: str) -> bool:
    """A racing run either sent, or refused naming the send under way, or found nothing left."""
    text = out + err
    return (code == 0 or (code == 1 and re.search(r"send #\d+ of \S+ to 'everyone' is under "
                                                  r"way \(process \S+:\d+, since ", text))
            ) and "Traceback" not in text


@pytest.mark.slow
def test_processes_starting_the_same_send_at_once_mail_each_person_once(pub: Pub) -> None:
    people = add_people(pub.engine, 300)
    args = ["send", SLUG, "--segment", "everyone", "--yes"]
    refused = 0
    for round_ in range(ROUNDS):
        _reset(pub)
        procs = [pub.spawn(*args) for _ in range(PROCESSES)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        for code, out, err in results:
            assert _outcome_ok(code, out, err), f"round {round_}: {code} {out}{err}"
        refused += sum(1 for code, _, _ in results if code == 1)
        counts = _delivered(pub.outbox)
        assert set(counts) == set(people), f"round {round_}: someone was skipped"
        assert set(counts.values()) == {1}, f"round {round_}: someone got it twice"
        with pub.engine.connect() as conn:
            states = conn.execute(select(sends.c.state, sends.c.total)).all()
        assert [s for s in states if s.total] == [("completed", 300)], states
    print(f"{ROUNDS} rounds x {PROCESSES} processes x {len(people)} subscribers on "
          f"{pub.engine.dialect.name}: duplicates 0, refused runs {refused}")


@pytest.mark.slow
def test_a_killed_send_and_two_racing_resumes_mail_each_person_once(pub: Pub) -> None:
    people = add_people(pub.engine, 600)
    args = ["send", SLUG, "--segment", "everyone", "--yes"]
    rng = random.Random()
    for round_ in range(ROUNDS):
        _reset(pub)
        first = pub.spawn(*args)
        folder = pub.outbox / SLUG
        target = rng.randint(1, 400)
        deadline = time.monotonic() + 60
        while (first.poll() is None and time.monotonic() < deadline
               and len(list(folder.glob("*/*.eml"))) < target):
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        pub.settle()  # PostgreSQL may still be finishing the dead process's COMMIT
        resumes = [pub.spawn(*args) for _ in range(2)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in resumes]
        for code, out, err in results:
            assert _outcome_ok(code, out, err), f"round {round_}: {code} {out}{err}"
        counts = _delivered(pub.outbox)
        assert set(counts) == set(people), f"round {round_} (kill at {target}): skipped"
        assert set(counts.values()) == {1}, f"round {round_} (kill at {target}): twice"
        with pub.engine.connect() as conn:
            assert set(conn.execute(select(send_recipients.c.state)).scalars()) == {"accepted"}


def test_threads_creating_the_same_send_at_once_leave_exactly_one(pub: Pub) -> None:
    add_people(pub.engine, 50)
    barrier = threading.Barrier(6)
    made, refused, errors = [], [], []

    def start() -> None:
        ledger = Ledger(open_database(pub.db_url))
        barrier.wait()
        try:
            made.append(ledger.create(issue=SLUG, segment="everyone", transport="outbox",
                                      content_hash="x" * 64, subject="s", members=true()))
        except SendBusy as exc:
            refused.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            ledger.engine.dispose()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(made) == 1 and len(refused) == 5
    assert all(f"send #{made[0].id} of {SLUG} to 'everyone' is under way" in r for r in refused)
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends.c.id)).scalars().all() == [made[0].id]


def test_a_send_to_another_segment_is_refused_while_one_is_stopped(pub: Pub) -> None:
    add_people(pub.engine, 5, tags=("energy",))
    ledger = Ledger(pub.engine)
    send = ledger.create(issue=SLUG, segment="energy", transport="outbox",
                         content_hash="x" * 64, subject="s", members=true())
    ledger.release(send.id, "interrupted")  # stopped, pending rows left
    result = pub.cli("send", SLUG, "--segment", "cyber", "--yes")
    assert result.exit_code == 1
    assert (f"send #{send.id} of {SLUG} to 'energy' is stopped and not yet resumed"
            in result.output)
    assert f"newsletter send cancel {SLUG}" in result.output
    given_up = pub.cli("send", "cancel", SLUG, "--yes")
    assert given_up.exit_code == 0, given_up.output
    assert ledger.get(send.id).state == "cancelled"


def test_every_ledger_write_is_fenced_by_the_lease(pub: Pub) -> None:
    add_people(pub.engine, 10)
    first = Ledger(pub.engine)
    send = first.create(issue=SLUG, segment="everyone", transport="outbox",
                        content_hash="x" * 64, subject="s", members=true())
    batch = first.mark_in_flight(send.id, [1, 2], 0)
    # a takeover (here: the same process name, as after a restart with a recycled pid)
    second = Ledger(pub.engine)
    token = second.acquire(send.id)
    assert token == first.leases.get(send.id, 0) + 1 or token == 2
    with pytest.raises(LeaseLost):
        first.record(send.id, [(1, "accepted", None, None)], batch)
    with pytest.raises(LeaseLost):
        first.mark_in_flight(send.id, [3], 0)
    with pytest.raises(LeaseLost):
        first.release(send.id)
    with pub.engine.connect() as conn:
        rows = dict(conn.execute(select(send_recipients.c.id, send_recipients.c.state)).all())
    assert rows[1] == rows[2] == "unknown" and rows[3] == "pending"  # nothing the loser wrote
    second.record(send.id, [(1, "accepted", None, None), (2, "accepted", None, None)], batch)
    assert second.get(send.id).accepted == 2


@pytest.mark.slow
def test_the_heartbeat_keeps_beating_while_the_engine_backs_off(
        pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 5)
    pub.env["NEWSLETTER_HEARTBEAT"] = "0.2"
    sendgrid.answer(429, {"errors": [{"message": "slow down"}]},
                    {"X-RateLimit-Reset": "+3"}, times=1)
    seen: set = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with pub.engine.connect() as conn:
                row = conn.execute(select(sends.c.heartbeat_at)).first()
            if row and row[0] and len(sendgrid.sends()) == 1:  # between 429 and the retry
                seen.add(row[0])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    out, err = proc.communicate(timeout=60)
    done.set()
    watcher.join()
    assert proc.returncode == 0, out + err
    assert len(sendgrid.sends()) == 2
    assert len(seen) >= 5, f"the lease was renewed only {len(seen)} times during the back-off"


@pytest.mark.slow
def test_a_stale_takeover_stops_the_old_process_without_a_duplicate(pub: Pub) -> None:
    add_people(pub.engine, 2000)
    proc = pub.spawn("send", SLUG, "--segment", "everyone", "--yes")
    folder = pub.outbox / SLUG
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(folder.glob("*/*.eml"))) < 50:
        time.sleep(0.01)
    with pub.engine.begin() as conn:  # another process takes the lease over
        conn.execute(update(sends).values(owner="elsewhere:1", lease=sends.c.lease + 1))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "another process took the send over" in err, out + err
    with pub.engine.connect() as conn:
        states = Counter(conn.execute(select(send_recipients.c.state)).scalars())
    written = len(list(folder.glob("*/*.eml")))
    # every file written is accepted or in flight; nothing was handed over unrecorded
    assert states["accepted"] <= written <= states["accepted"] + states["unknown"]
    assert states["pending"] > 0


def test_migration_4_keeps_one_active_send_per_issue(db_url: str) -> None:
    import datetime as dt

    from sqlalchemy import inspect, text
    from sqlalchemy.exc import IntegrityError

    from newsletter.db import connect, upgrade
    from newsletter.db.migrations import MIGRATIONS

    engine = connect(db_url)
    try:
        upgrade(engine, MIGRATIONS[:3])  # a database made before sends were exclusive
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        row = {"issue": SLUG, "transport": "outbox", "content_hash": "x", "subject": "s",
               "total": 0, "accepted": 0, "failed": 0, "unknown": 0, "batches": 0,
               "created_at": now, "updated_at": now}
        with engine.begin() as conn:
            for segment in ("cyber", "energy"):
                conn.execute(text("INSERT INTO sends (issue, segment, transport, content_hash, "
                                  "subject, state, total, accepted, failed, unknown, batches, "
                                  "created_at, updated_at) VALUES (:issue, :segment, "
                                  ":transport, :content_hash, :subject, 'stopped', :total, "
                                  ":accepted, :failed, :unknown, :batches, :created_at, "
                                  ":updated_at)"), {**row, "segment": segment})
        assert upgrade(engine) == list(range(4, len(MIGRATIONS) + 1))
        with engine.connect() as conn:
            states = conn.execute(select(sends.c.segment, sends.c.state, sends.c.lease)
                                  .order_by(sends.c.id)).all()
        assert states == [("cyber", "cancelled", 0), ("energy", "stopped", 0)]
        assert "uq_sends_active_issue" in {i["name"] for i in inspect(engine).get_indexes("sends")}
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("INSERT INTO sends (issue, segment, transport, content_hash, "
                              "subject, state, total, accepted, failed, unknown, batches, "
                              "created_at, updated_at) VALUES (:issue, 'trade', :transport, "
                              ":content_hash, :subject, 'sending', :total, :accepted, :failed, "
                              ":unknown, :batches, :created_at, :updated_at)"), row)
    finally:
        engine.dispose()
