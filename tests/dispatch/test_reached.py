"""The reached rule on its own (dispatch.ledger.reached), against a plain Python reference,
on SQLite and PostgreSQL; the per-batch look-up goes by the subscriber index; the consent
check's reasons."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select, text, update

from newsletter.audience import erasure
from newsletter.core.personalise import Recipient
from newsletter.db import open_database
from newsletter.db.ledger_tables import RECIPIENT_STATES, SEND_STATES, send_recipients, sends
from newsletter.db.tables import subscribers
from newsletter.dispatch.ledger import ConsentCheck
from newsletter.dispatch.ledger.reached import reached, recipients_of
from newsletter.providers.mailing import Item
from tests.dispatch.conftest import SECRET, add_people

FAMILY = ("2026-11-24", "2026-11-24-ar")
SLUGS = (*FAMILY, "2026-12-01")
T0 = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
PEOPLE = 6


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_database(db_url)
    add_people(engine, PEOPLE)
    yield engine
    engine.dispose()


rows_strategy = st.lists(st.tuples(
    st.integers(1, PEOPLE), st.sampled_from(RECIPIENT_STATES), st.integers(0, 3)),
    max_size=6)
ledgers = st.lists(st.tuples(st.sampled_from(SLUGS), st.sampled_from(SEND_STATES),
                             rows_strategy), max_size=5)


def _fill(engine: Engine, ledger: list) -> list[tuple[int, str, int, str, dt.datetime]]:
    """Write `ledger` (sends and their rows); returns (send, issue, person, state, when)."""
    flat = []
    active: set[str] = set()  # one send of an issue under way or stopped (unique index)
    with engine.begin() as conn:
        conn.execute(delete(send_recipients))
        conn.execute(delete(sends))
        for issue, state, rows in ledger:
            if state in ("sending", "stopped"):
                state = "completed" if issue in active else state
                active.add(issue)
            send_id = conn.execute(insert(sends).values(
                issue=issue, segment="everyone", transport="outbox", content_hash="x",
                subject="s", state=state, total=len(rows), created_at=T0, updated_at=T0,
            ).returning(sends.c.id)).scalar_one()
            for person, row_state, hours in rows:
                when = T0 + dt.timedelta(hours=hours)
                conn.execute(insert(send_recipients).values(
                    send_id=send_id, subscriber_id=person, email=f"p{person}@example.com",
                    name="", attributes={}, state=row_state, attempts=1, updated_at=when))
                flat.append((send_id, issue, person, row_state, when))
    return flat


def _ids(engine: Engine, query) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ledger=ledgers, unknown=st.booleans(), since=st.sampled_from([None, 0, 2]),
       besides=st.sampled_from([None, 1, 2]))
def test_reached_agrees_with_a_plain_reading_of_the_rule(engine: Engine, ledger: list,
                                                          unknown: bool, since: int | None,
                                                          besides: int | None) -> None:
    flat = _fill(engine, ledger)
    with engine.connect() as conn:
        first = conn.execute(select(sends.c.id).order_by(sends.c.id)).scalars().first() or 1
    besides_id = None if besides is None else first + besides - 1
    after = None if since is None else T0 + dt.timedelta(hours=since)
    states = ("accepted", "unknown") if unknown else ("accepted",)
    expected = {person for send_id, issue, person, state, when in flat
                if issue in FAMILY and state in states and send_id != besides_id
                and (after is None or when >= after)}
    query = reached(FAMILY, unknown=unknown, since=after, besides=besides_id)
    assert _ids(engine, query) == expected
    among = select(subscribers.c.id).where(subscribers.c.id.in_([1, 2, 3]))
    narrowed = reached(FAMILY, unknown=unknown, since=after, besides=besides_id, among=among)
    assert _ids(engine, narrowed) == expected & {1, 2, 3}
    # a new send: who is left out, by policy
    everyone = subscribers.c.status == "active"
    refused = {person for _, issue, person, state, _ in flat
               if issue in FAMILY and state == "failed"}
    reached_all = {p for _, i, p, s, _ in flat if i in FAMILY and s in ("accepted", "unknown")}
    accepted = {p for _, i, p, s, _ in flat if i in FAMILY and s == "accepted"}
    people = set(range(1, PEOPLE + 1))
    reached_since = {p for _, i, p, s, when in flat if i in FAMILY
                     and s in ("accepted", "unknown") and (after is None or when >= after)}
    chosen = select(subscribers.c.id)
    with engine.connect() as conn:  # the family's sends are read through the connection
        def chosen_by(policy: str, start: dt.datetime | None = None) -> set[int]:
            where = recipients_of(conn, FAMILY, everyone, policy, start)
            return set(conn.execute(chosen.where(where)).scalars())

        assert chosen_by("once") == people - reached_all - refused
        assert chosen_by("unknown") == people - accepted - refused
        assert chosen_by("again") == people
        assert chosen_by("again", after) == people - (reached_since if after else set())


def test_one_batch_is_looked_up_by_the_person_index(tmp_path) -> None:
    """On SQLite the per-batch question probes ix_send_recipients_person for each of the
    batch's people in each of the family's sends, named as a list: not every row of the
    family's sends (which ix_send_recipients_send would read), and not the whole ledger
    (SQLite's answer when the sends are a subquery: it uses an index on an expression for
    `IN` a list only)."""
    engine = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        r = send_recipients.c
        among = select(r.subscriber_id).where(r.id.in_([1, 2, 3]))

        def plan(send_ids: list[int] | None) -> str:
            query = select(r.id).where(r.subscriber_id.in_(
                reached(FAMILY, besides=1, among=among, send_ids=send_ids)))
            with engine.connect() as conn:
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                return " / ".join(str(row[-1]) for row in conn.execute(
                    text(f"EXPLAIN QUERY PLAN {compiled}")))

        listed = plan([1, 2, 3])
        assert "SEARCH reach USING INDEX ix_send_recipients_person (<expr>=? AND " \
               "subscriber_id=?)" in listed, listed
        assert "ix_send_recipients_send" not in listed.replace(
            "SEARCH send_recipients USING", ""), listed
        assert "SCAN reach" in plan(None)  # why the consent check lists them on SQLite
    finally:
        engine.dispose()


def test_the_consent_check_names_why(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        mine = conn.execute(insert(sends).values(
            issue=FAMILY[0], segment="everyone", transport="outbox", content_hash="x",
            subject="s", state="sending", total=PEOPLE, created_at=now, updated_at=now,
        ).returning(sends.c.id)).scalar_one()
        other = conn.execute(insert(sends).values(
            issue=FAMILY[1], segment="everyone", transport="outbox", content_hash="x",
            subject="s", state="completed", total=1, created_at=now, updated_at=now,
        ).returning(sends.c.id)).scalar_one()
        people = conn.execute(select(subscribers.c.id, subscribers.c.email)
                              .order_by(subscribers.c.id)).all()
        keys = [conn.execute(insert(send_recipients).values(
            send_id=mine, subscriber_id=sid, email=address, name="", attributes={},
            state="pending", attempts=0).returning(send_recipients.c.id)).scalar_one()
            for sid, address in people]
        conn.execute(insert(send_recipients).values(
            send_id=other, subscriber_id=people[4][0], email=people[4][1], name="",
            attributes={}, state="accepted", attempts=1, updated_at=now))
        conn.execute(update(subscribers).where(subscribers.c.id == people[0][0])
                     .values(status="unsubscribed"))
        conn.execute(update(subscribers).where(subscribers.c.id == people[1][0])
                     .values(paused_until=now + dt.timedelta(weeks=4)))
        conn.execute(update(subscribers).where(subscribers.c.id == people[2][0])
                     .values(status="complained"))
        conn.execute(delete(subscribers).where(subscribers.c.id == people[3][0]))
        erasure._list(conn, erasure.erasure_key(conn, SECRET, create=True),  # listed only
                      erasure.canonical(people[5][1]), now)
    items = [Item(key, Recipient(address)) for key, (_, address) in zip(keys, people,
                                                                         strict=True)]
    check = ConsentCheck(mine, FAMILY, "once", now, (SECRET,))
    with engine.connect() as conn:
        found = check.withdrawn(conn, items)
    assert found[keys[0]] == "unsubscribed since the send started"
    assert found[keys[1]].startswith("paused until ")
    assert found[keys[2]] == "complained since the send started"
    assert found[keys[3]] == "no longer a subscriber (erased)"
    assert found[keys[4]] == "reached by another send of this issue or one of its editions"
    assert found[keys[5]] == "erased at the person's request"
    again = ConsentCheck(mine, FAMILY, "again", now + dt.timedelta(hours=1), (SECRET,))
    with engine.connect() as conn:  # --again: what reached them before it started is fine
        assert keys[4] not in again.withdrawn(conn, items)
