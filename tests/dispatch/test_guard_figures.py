"""What the reputation guard counts (newsletter.db.health), on SQLite and PostgreSQL: every
provider's hard bounces and complaints alike, per person and per send, a server's own 5xx
refusals, nothing else; read from one index, and not at all before the minimum sample."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event, insert, select, update

from newsletter.core.reputation import Figures, Thresholds
from newsletter.db import open_database
from newsletter.db.health import BOUNCES, COMPLAINTS, event_counts, figures_of, is_refusal
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import engagement, subscribers
from newsletter.dispatch.guard import ReputationGuard
from newsletter.dispatch.ledger import Ledger
from newsletter.events.apply import apply_batch
from newsletter.events.policy import STORED
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent
from newsletter.providers.sendgrid.webhook import parse_event
from tests.dispatch.conftest import SLUG, add_people, artifact


@pytest.fixture()
def engine(migrated_db_url: str):
    engine = open_database(migrated_db_url)
    yield engine
    engine.dispose()


def _send(engine: Engine, people: int) -> tuple[int, list[int], list[str]]:
    """A send to `people` new subscribers, every row handed over and accepted."""
    emails = add_people(engine, people, start=len(_all(engine)))
    ledger = Ledger(engine)
    send = ledger.sends.create(issue=SLUG, segment="everyone", transport="smtp",
                               artifact=artifact(), members=subscribers.c.email.in_(emails))
    assert send is not None
    with engine.begin() as conn:
        conn.execute(update(send_recipients).where(send_recipients.c.send_id == send.id)
                     .values(state="accepted"))
        conn.execute(update(sends).where(sends.c.id == send.id).values(
            accepted=people, state="completed", owner=None))
        keys = conn.execute(select(send_recipients.c.id).where(
            send_recipients.c.send_id == send.id).order_by(send_recipients.c.id)).scalars()
        return send.id, list(keys), emails


def _all(engine: Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(subscribers.c.id)).all()


def _fail(engine: Engine, send_id: int, key: int, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(send_recipients).where(send_recipients.c.id == key)
                     .values(state="failed", last_error=error))
        conn.execute(update(sends).where(sends.c.id == send_id).values(
            accepted=sends.c.accepted - 1, failed=sends.c.failed + 1))



def sendgrid_event(event_id: str, event: str, email: str, timestamp: int,
                   send_id: int | None, **raw: str) -> ProviderEvent:
    """SendGrid's Event Webhook item, through its parser (as the webhook route gets it)."""
    found = parse_event({"sg_event_id": event_id, "event": event, "email": email,
                         "timestamp": timestamp, "nl_send": send_id, **raw}, now=2e9)
    assert found is not None
    return found

def test_every_providers_bounces_and_complaints_count_alike(engine: Engine) -> None:
    mine, keys, emails = _send(engine, 40)
    other, _, others = _send(engine, 10)

    def sendgrid(n: int, event: str, email: str, send_id: int | None = mine,
                 **raw: str) -> ProviderEvent:
        return sendgrid_event(f"sg-{n}", event, email, 1_800_000_000 + n, send_id, **raw)

    apply_batch(engine, [
        sendgrid(1, "bounce", emails[0]), sendgrid(2, "bounce", emails[0]),  # one person
        sendgrid(3, "bounce", emails[1].upper()),
        sendgrid(4, "bounce", emails[2], type="blocked"),  # soft
        sendgrid(5, "dropped", emails[3], reason="Invalid"),
        sendgrid(6, "spamreport", emails[4]),
        sendgrid(7, "open", emails[5]), sendgrid(8, "bounce", others[0], other),
        sendgrid(9, "bounce", emails[6], None),  # no send named: counts for none
    ])

    def neutral(n: int, kind: Kind, email: str, **extra) -> ProviderEvent:
        return ProviderEvent("mailbox", f"mb-{n}", kind, email, 1_800_000_100 + n,
                             send_id=mine, **extra)

    apply_batch(engine, [
        neutral(1, Kind.BOUNCED, emails[7], bounce=Bounce.HARD),
        neutral(2, Kind.BOUNCED, emails[8], bounce=Bounce.SOFT),
        neutral(3, Kind.COMPLAINED, emails[4]),  # the same person complained twice
        neutral(4, Kind.COMPLAINED, emails[9]),
        neutral(5, Kind.DROPPED, emails[10], reason=DropReason.BOUNCED),
        neutral(6, Kind.DELIVERED, emails[11]),
    ])
    _fail(engine, mine, keys[20], "RCPT TO: 550 5.1.1 no such mailbox")
    _fail(engine, mine, keys[21], "end of DATA: 554 5.7.1 rejected")
    _fail(engine, mine, keys[22], "still deferred after 6 tries: RCPT TO: 450 4.2.0 later")
    _fail(engine, mine, keys[23], "cannot make this recipient's message: ValueError: x")
    with engine.connect() as conn:
        found = figures_of(conn, [mine, other])
    # hard: emails 0, 1, 7 (events) + two refusals; complaints: emails 4 and 9
    assert found[mine] == Figures(handed=40, hard=5, complaints=2, refused=2)
    assert found[other] == Figures(handed=10, hard=1, complaints=0, refused=0)
    assert found[mine].bounce_rate == 5 / 40 and found[mine].complaint_rate == 2 / 40


def test_the_counters_are_the_policys() -> None:
    """What the guard counts is where every provider's hard bounces and complaints go."""
    assert STORED[(Kind.BOUNCED, Bounce.HARD)][1] == BOUNCES
    assert STORED[(Kind.COMPLAINED, None)][1] == COMPLAINTS
    assert {STORED[key][1] for key in ((Kind.BOUNCED, Bounce.SOFT),
                                       (Kind.DROPPED, DropReason.INVALID),
                                       (Kind.DROPPED, DropReason.COMPLAINED))}.isdisjoint(
        {BOUNCES, COMPLAINTS})


@pytest.mark.parametrize("state, error, refusal", [
    ("failed", "RCPT TO: 550 5.1.1 no such mailbox", True),
    ("failed", "DATA: 554 no", True),
    ("failed", "end of DATA: 552 5.3.4 too big", True),
    ("failed", "RCPT TO: 5501 odd", False),
    ("failed", "still deferred after 6 tries: RCPT TO: 550 x", False),
    ("failed", "MAIL FROM: 550 sender refused", False),  # the whole send stops instead
    ("deferred", "RCPT TO: 450 later", False),
    ("accepted", "RCPT TO: 550 x", False),
    ("failed", None, False),
])
def test_what_a_refusal_is(state: str, error: str | None, refusal: bool) -> None:
    assert is_refusal(state, error) is refusal


def test_the_smtp_transports_refusal_is_one() -> None:
    """The SMTP transport's own words for a 550 are what the rule recognises."""
    from types import SimpleNamespace

    from newsletter.providers.smtp import SmtpTransport

    transport = SmtpTransport("smtp://127.0.0.1:25")
    connection = SimpleNamespace(rset=lambda: (250, b"ok"))
    outcome = transport._refused("RCPT TO", 550, b"5.1.1 no such mailbox", connection)
    assert outcome.state == "failed" and is_refusal(outcome.state, outcome.error)


def test_the_guard_reads_nothing_more_before_its_sample(engine: Engine) -> None:
    """Below the minimum sample the guard reads the send's counters (one primary-key row)
    and nothing else; past it, one count of its events besides."""
    send_id, _, emails = _send(engine, 30)
    apply_batch(engine, [sendgrid_event("b1", "bounce", emails[0], 1_800_000_000, send_id)])
    statements: list[str] = []

    def seen(conn, cursor, sql, *rest) -> None:
        if sql.lstrip().upper().startswith("SELECT"):  # not the driver's BEGIN
            statements.append(sql)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        waiting = ReputationGuard(engine, send_id, Thresholds(min_sample=31))
        statements.clear()
        assert waiting.check().judged is False
        assert len(statements) == 1 and "engagement" not in statements[0]
        judging = ReputationGuard(engine, send_id, Thresholds(min_sample=30))
        statements.clear()
        verdict = judging.check()
        assert verdict.judged and verdict.figures == Figures(30, 1, 0)
        assert len(statements) == 2 and "engagement" in statements[1]
        resumed = ReputationGuard(engine, send_id, Thresholds(min_sample=10),
                                  baseline=Figures(25, 1, 0))
        assert resumed.check().judged is False  # 5 since the resume
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_the_counts_read_the_partial_indexes(migrated_db_url: str) -> None:
    """Each count reads its partial index (the send's people with a bounce, with a
    complaint): never the send's other people, never the table. Here the send has 3,000
    people with opens and clicks, 40 who bounced and 3 who complained."""
    engine = open_database(migrated_db_url)
    rows = [{"send_id": send_id, "email_key": f"r{n}@example.com", "opens": 1,
             "bounces": int(n < 40), "complaints": int(40 <= n < 43),
             **{c: 0 for c in ("delivered", "clicks", "deferred", "blocked", "dropped",
                               "unsubscribes")}}
            for send_id in (7, 8) for n in range(3000)]
    try:
        with engine.begin() as conn:
            conn.execute(insert(engagement), rows)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE engagement" if conn.dialect.name ==
                                 "postgresql" else "ANALYZE")
        with engine.connect() as conn:
            captured: list[tuple[str, object]] = []
            event.listen(conn, "before_cursor_execute",
                         lambda c, cursor, sql, params, *rest: captured.append((sql, params)))
            assert event_counts(conn, [7]) == {7: (40, 3)}
            explain = "EXPLAIN QUERY PLAN" if conn.dialect.name == "sqlite" else "EXPLAIN"
            sql, params = captured[-1]
            plan = " / ".join(str(row[-1]) for row in conn.exec_driver_sql(
                f"{explain} {sql}", params))
    finally:
        engine.dispose()
    for name in ("bounces", "complaints"):
        assert f"ix_engagement_{name}" in plan, plan
    assert "Seq Scan" not in plan and "SCAN engagement" not in plan, plan


def test_a_send_without_anything_yet(engine: Engine) -> None:
    with engine.connect() as conn:
        assert figures_of(conn, [999]) == {999: Figures()}
        assert event_counts(conn, []) == {}
