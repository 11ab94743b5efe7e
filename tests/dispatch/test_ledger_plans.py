"""The ledger's hot statements are index range operations on SQLite and PostgreSQL, whatever the
planner's statistics say (issue 31).

The statements are the ones the code runs, captured as it runs them (a send's batch read,
hand-over, outcomes, consent check; a click's look-up of its delivery time), each then asked
for its plan with EXPLAIN. The ledger is set up in the planner's worst case: on PostgreSQL its
statistics were gathered when it held one send only, and the send under test was filled
afterwards (the planner then expects about one row of it: issue 31 saw each batch read scan
and sort the whole send).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, select, text, true

from newsletter.db import open_database
from newsletter.db.ledger_tables import FILLFACTOR, send_recipients, sends
from newsletter.db.tables import subscribers
from newsletter.dispatch.ledger import ConsentCheck, Ledger
from newsletter.dispatch.ledger.consent import REACHED_ELSEWHERE, preview
from newsletter.dispatch.ledger.reached import recipients_of
from newsletter.events.apply import apply_batch
from newsletter.providers.sendgrid.webhook import parse_event
from tests.dispatch.conftest import SLUG, add_people, artifact

PEOPLE = 3000
OTHER = "2026-12-01"


@contextlib.contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, object]]]:
    """The statements (single executions) this engine runs meanwhile, with their parameters."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if not executemany:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan(engine: Engine, statement: str, parameters: object) -> str:
    """The plan of one captured statement (PostgreSQL: EXPLAIN; SQLite: EXPLAIN QUERY PLAN)."""
    pg = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + statement,
                                    parameters).all()
    return "\n".join(str(row[0] if pg else row[-1]) for row in rows)


def on_ledger(seen: list[tuple[str, object]]) -> list[tuple[str, object]]:
    return [(s, p) for s, p in seen if "send_recipients" in s and "EXPLAIN" not in s]


def assert_ranged(engine: Engine, statement: str, shown: str) -> None:
    """Every read of send_recipients in the plan goes by an index (a range of one send's ids
    or the key of one row), with no scan of the table and no sort."""
    if engine.dialect.name == "postgresql":
        assert "Seq Scan on send_recipients" not in shown, (statement, shown)
        assert not re.search(r"\bSort\b", shown), (statement, shown)
        reads = re.findall(r"(\w[\w ]*Scan) (?:using (\w+) )?on send_recipients", shown)
        assert reads, (statement, shown)
        for kind, index in reads:
            assert kind in ("Index Scan", "Index Only Scan"), (statement, shown)
            assert index in ("ix_send_recipients_send", "ix_send_recipients_person",
                             "send_recipients_pkey"), (statement, shown)
        for condition in re.findall(r"Index Cond: (.*)", shown):
            if "send_id =" in condition and "subscriber_id" not in condition:
                assert re.search(r"\bid [<>=]", condition), (statement, shown)
            if "send_id + 0" in condition:  # a person's rows: probed, never a send read whole
                assert "subscriber_id =" in condition, (statement, shown)
    else:
        assert "TEMP B-TREE" not in shown, (statement, shown)
        reads = re.findall(r"(SCAN|SEARCH) (?:send_recipients|reach|batch|r|rec\w*)\b(.*)",
                           shown)
        for kind, how in reads:
            assert kind == "SEARCH", (statement, shown)
            # (an index's entries end with the rowid: SQLite may name the id either way)
            assert (re.search(r"ix_send_recipients_send \(send_id=\? AND (row)?id[<>=]", how)
                    or "ix_send_recipients_person (<expr>=? AND subscriber_id=?" in how
                    or "INTEGER PRIMARY KEY" in how), (statement, shown)


def worst_case_statistics(engine: Engine) -> Ledger:
    """A completed send of another issue to every other person (even ids), statistics
    gathered then (PostgreSQL), and the send under test filled afterwards."""
    add_people(engine, PEOPLE)
    ledger = Ledger(engine)
    first = ledger.sends.create(issue=OTHER, segment="everyone", transport="outbox",
                                artifact=artifact(OTHER), members=subscribers.c.id % 2 == 0)
    with engine.begin() as conn:
        conn.execute(send_recipients.update().values(state="accepted"))
    ledger.sends.release(first.id)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    return ledger


def test_a_sends_batches_are_read_and_updated_by_index_ranges(migrated_db_url: str) -> None:
    engine = open_database(migrated_db_url)
    try:
        ledger = worst_case_statistics(engine)
        send = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                                   artifact=artifact(), members=true())
        with engine.connect() as conn:
            evens = set(conn.execute(select(subscribers.c.email).where(
                subscribers.c.id % 2 == 0)).scalars())
        check = ConsentCheck(send.id, (SLUG, OTHER), "once", send.created_at, "s" * 32,
                             erasures=False)
        with captured(engine) as seen:
            batches = ledger.recipients.stream(send.id, ["pending"], 500)
            items = next(batches)
            over = ledger.recipients.hand_over(send.id, items, check=check, whole=True)
            ledger.recipients.record(send.id, [(item.key, "accepted", None, None)
                                               for item in over.items], over.batch)
            next(batches)
        statements = on_ledger(seen)
        kinds = {s.split()[0].upper() for s, _ in statements}
        assert kinds == {"SELECT", "UPDATE"} and len(statements) >= 4, statements
        reached = {item.key for item in items if item.recipient.email in evens}
        assert over.skipped == dict.fromkeys(reached, REACHED_ELSEWHERE)  # the check joined
        assert len(over.items) == len(items) - len(reached) > 0
        for statement, parameters in statements:
            assert_ranged(engine, statement, plan(engine, statement, parameters))
    finally:
        engine.dispose()


def test_a_click_finds_its_delivery_time_by_key(migrated_db_url: str) -> None:
    """A click of an SMTP or outbox send (no delivery event) reads the time its message was
    accepted from its own ledger row: found by key, not by reading the send (or every send's
    rows by address), and of the right send."""
    engine = open_database(migrated_db_url)
    try:
        ledger = worst_case_statistics(engine)
        send = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                                   artifact=artifact(), members=true())
        items = next(ledger.recipients.stream(send.id, ["pending"], PEOPLE))
        over = ledger.recipients.hand_over(send.id, items, check=None, whole=True)
        ledger.recipients.record(send.id, [(i.key, "accepted", None, None) for i in items],
                                 over.batch)
        with engine.connect() as conn:
            accepted = conn.execute(select(send_recipients.c.updated_at).where(
                send_recipients.c.send_id == send.id).limit(1)).scalar_one()
            assert conn.execute(select(sends.c.accepted).where(sends.c.id == send.id)
                                ).scalar_one() == PEOPLE
        who = items[PEOPLE // 2].recipient.email
        at = int(accepted.timestamp())
        clicks = [parse_event({"sg_event_id": f"c{n}", "event": "click", "email": who,
                               "timestamp": at + delay, "nl_send": send.id,
                               "url": "https://example.org/a",
                               "useragent": "Mozilla/5.0 (X11)"}, now=at + 7200)
                  for n, delay in enumerate((2, 3600))]
        # and an hour later, 60 other people's: a batch of many addresses, where a planner
        # without statistics would rather read the whole send once than probe each of them
        clicks += [parse_event({"sg_event_id": f"p{n:02}", "event": "click",
                                "email": items[n].recipient.email, "timestamp": at + 3600,
                                "nl_send": send.id, "url": "https://example.org/a",
                                "useragent": "Mozilla/5.0 (X11)"}, now=at + 7200)
                   for n in range(60)]
        with captured(engine) as seen:
            apply_batch(engine, clicks)
        with engine.connect() as conn:
            reasons = dict(conn.execute(text(
                "SELECT sg_event_id, reason FROM webhook_events "
                "WHERE sg_event_id LIKE 'c%' ORDER BY 1")).all())
        # seconds after this send accepted it: a scanner's; an hour later: a person's. (The
        # other send's row of the same person, accepted earlier, does not count.)
        assert reasons == {"c0": "too-soon", "c1": None}
        [(statement, parameters)] = on_ledger(seen)
        shown = plan(engine, statement, parameters)
        assert_ranged(engine, statement, shown)
        assert "ix_send_recipients_person" in shown, shown
        assert "uq_subscribers_email_key" in shown or "sqlite_autoindex" in shown, shown
    finally:
        engine.dispose()


def test_a_new_sends_snapshot_reads_only_its_familys_rows(migrated_db_url: str) -> None:
    """The snapshot of an issue's first send reads no ledger row (the ledger of other issues
    grows with every send); the snapshot of a send whose family reached people already leaves
    them out by an anti-join on PostgreSQL, never a subplan (NOT IN over a subquery is one
    there: rescanned for every subscriber once the list outgrows hash_mem, which made a send
    of an issue already sent to a million people run past 3 minutes), and by
    ix_send_recipients_person, send by send, on SQLite."""
    engine = open_database(migrated_db_url)
    pg = engine.dialect.name == "postgresql"
    try:
        ledger = worst_case_statistics(engine)  # OTHER reached every even id

        def snapshot_of(issue: str) -> tuple[int, str]:
            with captured(engine) as seen:
                send = ledger.sends.create(
                    issue=issue, segment="everyone", transport="outbox",
                    artifact=artifact(issue),
                    members=lambda conn: recipients_of(conn, (issue,), true(), "once"))
            [(statement, parameters)] = [(s, p) for s, p in on_ledger(seen)
                                         if s.lstrip().upper().startswith("INSERT")]
            # the INSERT's own row count is the send's total: no second pass counts the rows
            # (PostgreSQL reports none unless asked: 0.29 s at 1M)
            assert not [s for s, _ in on_ledger(seen) if "count(" in s.lower()], seen
            return send.total, plan(engine, statement, parameters)

        total, shown = snapshot_of(SLUG)
        assert total == PEOPLE
        assert not re.search(r"\b(reach|refused)\b", shown), shown
        total, shown = snapshot_of(OTHER)
        assert total == PEOPLE // 2  # the odd ids: the others had it
        if pg:
            assert "Anti Join" in shown and "SubPlan" not in shown, shown
        else:
            reads = re.findall(r"(SCAN|SEARCH) (reach|refused)\b(.*)", shown)
            assert {alias for _, alias, _ in reads} == {"reach", "refused"}, shown
            assert all(kind == "SEARCH" and "ix_send_recipients_person (<expr>=?" in how
                       for kind, _, how in reads), shown
    finally:
        engine.dispose()


def test_a_resumes_preview_probes_each_person_once(migrated_db_url: str) -> None:
    """The plan of a resume previews who the hand-over will drop, over all of the send's
    pending rows. "Reached by another send of the family" is a semi-join there. PostgreSQL's
    `IN` inside an `OR` became a list scanned again for each row once it outgrew `hash_mem`
    (with the statistics of the new person index, a resume of a 1M send whose family had
    another 1M send was cancelled after 120 s; 2.4-2.5 s now). Here `work_mem` is made tiny
    so that no list fits."""
    engine = open_database(migrated_db_url)
    pg = engine.dialect.name == "postgresql"
    try:
        ledger = worst_case_statistics(engine)  # OTHER reached every even id
        send = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                                   artifact=artifact(), members=true())
        check = ConsentCheck(send.id, (SLUG, OTHER), "once", send.created_at, "s" * 32,
                             erasures=False)
        with captured(engine) as seen, engine.connect() as conn:
            dropped = preview(conn, check, ["pending"])
        assert dropped == [(REACHED_ELSEWHERE, PEOPLE // 2)]
        [(statement, parameters)] = [(s, p) for s, p in on_ledger(seen) if "reach" in s]
        with engine.connect() as conn:
            if pg:
                conn.exec_driver_sql("SET work_mem = '64kB'")
                conn.exec_driver_sql("SET hash_mem_multiplier = 1")
            shown = "\n".join(str(row[0] if pg else row[-1]) for row in conn.exec_driver_sql(
                ("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + statement, parameters))
        if pg:  # a semi-join (hashed or probing the index), never a subplan run per row
            assert "Semi Join" in shown and "SubPlan" not in shown, shown
        else:
            reads = re.findall(r"(SCAN|SEARCH) reach\b(.*)", shown)
            assert reads and all(
                kind == "SEARCH" and "ix_send_recipients_person (<expr>=? AND subscriber_id=?)"
                in how for kind, how in reads), shown
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_ledgers_updates_stay_on_their_page(postgres_url: str) -> None:
    """PostgreSQL: send_recipients leaves room on each page (fillfactor), so the two updates
    of a row (in flight, then its outcome) mostly stay there (HOT: no new index entries);
    with pages filled full almost none did (issue 31: 98.7 %)."""
    engine = open_database(postgres_url)
    with engine.connect() as conn:
        options = conn.execute(text("SELECT reloptions FROM pg_class "
                                    "WHERE relname = 'send_recipients'")).scalar_one()
    assert options == [f"fillfactor={FILLFACTOR}"] and FILLFACTOR <= 34
    add_people(engine, 2000)
    ledger = Ledger(engine)
    send = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                               artifact=artifact(), members=true())
    for items in ledger.recipients.stream(send.id, ["pending"], 1000):
        over = ledger.recipients.hand_over(send.id, items, check=None, whole=True)
        ledger.recipients.record(send.id, [(i.key, "accepted", None, None) for i in items],
                                 over.batch)
    engine.dispose()  # its sessions end, and report their statistics as they do
    engine = open_database(postgres_url)
    query = text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                 "WHERE relname = 'send_recipients'")
    deadline = time.monotonic() + 30
    try:
        while True:
            with engine.connect() as conn:
                updates, hot = conn.execute(query).one()
            if updates >= 4000:
                break
            assert time.monotonic() < deadline, f"only {updates} updates ever reported"
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert updates == 4000 and hot >= updates * 0.8, (hot, updates)


@pytest.mark.postgres
def test_a_large_send_has_its_rows_analysed_once_they_exist(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: the ledger's statistics are refreshed right after a large send fills its
    rows (the send's own statements do not need them: see above), not left to autovacuum."""
    from newsletter.dispatch.ledger import sends as ledger_sends

    engine = open_database(postgres_url)
    query = text("SELECT last_analyze FROM pg_stat_user_tables "
                 "WHERE relname = 'send_recipients'")
    try:
        add_people(engine, 30)
        monkeypatch.setattr(ledger_sends, "ANALYZE_FROM", 40)
        ledger = Ledger(engine)
        small = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                                    artifact=artifact(), members=true())
        ledger.sends.cancel(small.id, "test")
        with engine.connect() as conn:
            assert conn.execute(query).scalar_one() is None
        add_people(engine, 10, start=30)
        ledger.sends.create(issue=OTHER, segment="everyone", transport="outbox",
                            artifact=artifact(OTHER), members=true())
        with engine.connect() as conn:
            assert conn.execute(query).scalar_one() is not None
    finally:
        engine.dispose()


def test_a_click_reads_only_its_own_events(migrated_db_url: str) -> None:
    """A click's verdict reads the delivery and earlier clicks of its own address by the
    address's index, even when the statistics were gathered before the send had any events
    (PostgreSQL then chose the send's timeline index and read every event of the send: 40 ms
    a redirect at 100,000 events)."""
    import datetime as dt

    from sqlalchemy import insert

    from newsletter.db.tables import webhook_events

    engine = open_database(migrated_db_url)
    try:
        ledger = worst_case_statistics(engine)
        send = ledger.sends.create(issue=SLUG, segment="everyone", transport="sendgrid",
                                   artifact=artifact(), members=true())
        at = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
        with engine.begin() as conn:
            conn.execute(insert(webhook_events), [
                {"sg_event_id": f"{kind}{n}", "event": kind, "email_key": f"p{n}@example.org",
                 "send_id": send.id, "occurred_at": at, "received_at": at, "machine": False}
                for n in range(PEOPLE) for kind in ("delivered", "click")])
        click = parse_event({"sg_event_id": "late", "event": "click", "email": "P7@example.org",
                             "timestamp": int(at.timestamp()) + 2, "nl_send": send.id,
                             "url": "https://example.org/a", "useragent": "Mozilla/5.0 (X11)"},
                            now=int(at.timestamp()) + 7200)
        with captured(engine) as seen:
            apply_batch(engine, [click])
        with engine.connect() as conn:
            reason = conn.execute(text(
                "SELECT reason FROM webhook_events WHERE sg_event_id = 'late'")).scalar_one()
        assert reason == "too-soon"  # two seconds after its own delivery
        [(statement, parameters)] = [(s, p) for s, p in seen if "FROM webhook_events" in s
                                     and re.search(r"email_key (IN|= ANY)", s)
                                     and "EXPLAIN" not in s]
        shown = plan(engine, statement, parameters)
        assert "ix_webhook_events_key_time" in shown, shown
        assert "timeline" not in shown and "ix_webhook_events_report" not in shown, shown
    finally:
        engine.dispose()
