"""Each subscriber's `last_engaged_at` stays what the events say, whatever happens to them.

A sequence of the real operations (webhook batches of opens, clicks and deliveries, some by
machines, some replayed, some making a burst that re-marks stored clicks; pruning; erasure;
a sign-up of an address with events stored, or of an erased address that comes back) is run
on SQLite and PostgreSQL; after every step each subscriber's column equals a plain Python
reference over the stored events (their latest human open or click), and `engaged_within`
segments select exactly the people the reference says. A process killed (SIGKILL) in the
middle of its webhook batches leaves the two in step too.
"""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert, select

from newsletter.audience import Segments, add_subscriber, import_csv
from newsletter.audience.erasure import erase, restore
from newsletter.db.engine import write_connection
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import erased_addresses, subscribers, webhook_events
from newsletter.events.apply import apply_events
from newsletter.events.prune import prune_events
from newsletter.providers.events import Kind, ProviderEvent

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = 86400
PEOPLE = ["ann", "bob", "cat", "fay"]  # fay has events before she subscribes
SECRET = "a-test-secret-that-is-long-enough-0123456789"
PERIODS = (3, 21, 50)  # engaged_within, in days
_ids = itertools.count()


def address(who: str) -> str:
    return f"{who}@example.org"


def populate(conn: Connection) -> None:
    """Send 1, and every person but fay subscribed."""
    conn.execute(insert(sends).values(
        id=1, issue="2026-11-24", segment="everyone", transport="outbox",
        content_hash="0" * 64, subject="S", state="completed", total=3, accepted=3,
        failed=0, unknown=0, batches=1, created_at=NOW, updated_at=NOW))
    for who in PEOPLE[:-1]:
        add_subscriber(conn, address(who))


# one event: who, kind, by a machine, link, age in days (a few values: bursts happen), second
event_st = st.tuples(st.sampled_from(PEOPLE), st.sampled_from(["open", "click", "delivered"]),
                     st.booleans(), st.integers(1, 4), st.sampled_from([0, 2, 30, 45]),
                     st.integers(0, 3))
step_st = st.one_of(
    st.tuples(st.just("ingest"), st.lists(event_st, min_size=1, max_size=6),
              st.sampled_from([0, 10, 40]), st.booleans()),  # received days ago, replay one
    st.tuples(st.just("prune"), st.sampled_from([5, 20])),
    st.tuples(st.just("erase"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("subscribe"), st.sampled_from(PEOPLE)),
)


def provider_event(who: str, kind: str, machine: bool, link: int, age: int,
                   second: int) -> ProviderEvent:
    common = {"provider": "sendgrid", "event_id": f"ev{next(_ids)}", "email": address(who),
              "timestamp": int(NOW.timestamp()) - age * DAY - 3600 + second, "send_id": 1}
    if kind == "open":
        return ProviderEvent(kind=Kind.OPENED, provider_machine=machine,
                             user_agent="Thunderbird/128", **common)
    if kind == "click":
        return ProviderEvent(kind=Kind.CLICKED, url=f"https://example.org/{link}",
                             position=link, user_agent="curl/8.0" if machine else "Firefox/133",
                             **common)
    return ProviderEvent(kind=Kind.DELIVERED, **common)


def reference(engine: Engine) -> dict[str, dt.datetime | None]:
    """Each subscriber's latest human open or click, from the stored events in Python."""
    with engine.connect() as conn:
        keys = conn.execute(select(subscribers.c.email_key)).scalars().all()
        events = conn.execute(select(webhook_events.c.email_key, webhook_events.c.event,
                                     webhook_events.c.machine,
                                     webhook_events.c.occurred_at)).all()
    latest: dict[str, dt.datetime | None] = dict.fromkeys(keys)
    for key, event, machine, at in events:
        if key in latest and event in ("open", "click") and not machine and at is not None:
            latest[key] = max(at, latest[key] or at)
    return latest


def stored(engine: Engine) -> dict[str, dt.datetime | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(subscribers.c.email_key,
                                        subscribers.c.last_engaged_at)).all())


def run(engine: Engine, step: tuple, replays: list[ProviderEvent]) -> None:
    kind = step[0]
    with write_connection(engine) as conn, conn.begin():
        if kind == "ingest":
            batch = [provider_event(*e) for e in step[1]]
            if step[3] and replays:  # a provider's retry of an event stored before
                batch.append(replays[-1])
            replays.extend(batch)
            apply_events(conn, batch, now=NOW - dt.timedelta(days=step[2]), secrets=SECRET)
        elif kind == "erase":
            erase(conn, SECRET, address(step[1]))
        elif kind == "subscribe":
            restore(conn, SECRET, address(step[1]))  # a confirmed sign-up comes back
            add_subscriber(conn, address(step[1]), secrets=SECRET)
    if kind == "prune":
        prune_events(engine, step[1], now=NOW)


@settings(max_examples=20, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step_st, min_size=1, max_size=8))
# a later batch makes a burst of three links within two seconds: ann's earlier click, her
# latest human engagement, becomes a machine's
@example(steps=[("ingest", [("ann", "click", False, 1, 2, 0), ("ann", "open", False, 1, 30, 0)],
                 0, False),
                ("ingest", [("ann", "click", False, 2, 2, 1), ("ann", "click", False, 3, 2, 2)],
                 0, True)])
# pruning deletes bob's latest human open (received 40 days ago), not his older one
@example(steps=[("ingest", [("bob", "open", False, 1, 45, 0)], 10, False),
                ("ingest", [("bob", "open", False, 1, 30, 0), ("bob", "click", True, 2, 0, 0)],
                 40, False),
                ("prune", 20), ("prune", 5)])
# fay's opens come before she subscribes; cat is erased and comes back without her past
@example(steps=[("ingest", [("fay", "open", False, 1, 2, 0), ("cat", "click", False, 1, 0, 3)],
                 0, False),
                ("subscribe", "fay"), ("erase", "cat"),
                ("ingest", [("cat", "open", False, 1, 0, 1)], 0, False), ("subscribe", "cat"),
                ("ingest", [("cat", "open", False, 1, 30, 1)], 0, False)])
def test_last_engagement_follows_the_events(engine: Engine, tmp_path: Path,
                                             steps: list[tuple]) -> None:
    with engine.begin() as conn:
        for table in (webhook_events, subscribers, erased_addresses, sends):
            conn.execute(delete(table))
        populate(conn)
    path = tmp_path / "subscribers" / "segments.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"segments": {
        f"p{d}": {"engaged_within": f"{d}d"} for d in PERIODS} | {
        f"not-p{d}": {"none": [{"engaged_within": f"{d}d"}]} for d in PERIODS}}),
        encoding="utf-8")
    segments = Segments.load(tmp_path)
    replays: list[ProviderEvent] = []
    for n, step in enumerate(steps):
        run(engine, step, replays)
        expected = reference(engine)
        assert stored(engine) == expected, (n, steps[: n + 1])
        with engine.connect() as conn:
            for days in PERIODS:
                since = NOW - dt.timedelta(days=days)
                members = set(conn.execute(select(subscribers.c.email_key).where(
                    segments.condition(f"p{days}", now=NOW))).scalars())
                outside = set(conn.execute(select(subscribers.c.email_key).where(
                    segments.condition(f"not-p{days}", now=NOW))).scalars())
                assert members == {k for k, at in expected.items()
                                   if at is not None and at >= since}, (days, steps[: n + 1])
                assert outside == set(expected) - members, (days, steps[: n + 1])


#: A child that applies webhook batches of opens and clicks until it is killed.
INGEST = """\
import random, sys
from newsletter.db import open_database
from newsletter.events.apply import apply_batch
from newsletter.providers.events import Kind, ProviderEvent
engine, rng, n = open_database(sys.argv[1]), random.Random(7), 0
while True:
    batch = []
    for _ in range(300):
        n += 1
        batch.append(ProviderEvent(
            provider="sendgrid", event_id=f"k{n}", kind=rng.choice([Kind.OPENED, Kind.CLICKED]),
            email=f"{rng.choice(['ann', 'bob', 'cat'])}@example.org", send_id=1,
            timestamp=int(sys.argv[2]) - rng.randint(0, 90 * 86400), user_agent="Firefox/133",
            provider_machine=rng.random() < 0.3, position=rng.randint(1, 4)))
    apply_batch(engine, batch)
"""


@pytest.mark.slow
def test_a_kill_mid_ingest_leaves_events_and_last_engagement_in_step(engine: Engine,
                                                                      migrated_db_url: str
                                                                      ) -> None:
    with engine.begin() as conn:
        populate(conn)

    def stored_events() -> int:
        with engine.connect() as conn:
            return len(conn.execute(select(webhook_events.c.sg_event_id)).all())

    for _ in range(2):  # killed twice, at whatever point each batch had reached
        before = stored_events()
        child = subprocess.Popen([sys.executable, "-c", INGEST, migrated_db_url,
                                  str(int(NOW.timestamp()))], cwd=ROOT)
        deadline = time.monotonic() + 60
        while stored_events() < before + 600:  # two batches committed, a third under way
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        expected = reference(engine)
        assert stored(engine) == expected and all(expected.values())
        assert stored_events() % 300 == 0  # whole batches only


def test_people_an_import_adds_get_their_stored_engagement(engine: Engine,
                                                           tmp_path: Path) -> None:
    """Addresses with events stored already (people deleted and now imported again) start
    with the last engagement those events say; the others with none."""
    with write_connection(engine) as conn, conn.begin():
        apply_events(conn, [provider_event(who, kind, machine, 1, age, 0) for who, kind, machine,
                            age in [("fay", "open", False, 2), ("fay", "click", False, 30),
                                    ("eve", "open", True, 0), ("eve", "click", False, 45),
                                    ("gus", "open", True, 1)]], now=NOW)
    rows = tmp_path / "people.csv"
    rows.write_text("email,name\n" + "".join(f"{address(who)},{who}\n"
                                              for who in ("fay", "eve", "gus", "hal")), "utf-8")
    report = import_csv(engine, rows, chunk_rows=2)
    assert report.added == 4
    expected = reference(engine)
    assert stored(engine) == expected
    assert [k for k, at in sorted(expected.items()) if at] == [address("eve"), address("fay")]
