"""A large mixed webhook batch applied in one signed request stores exactly what applying its
events one by one stores: the same event rows with their detail and verdicts (human opens,
machine opens, scanner agents, clicks too soon after delivery, bursts), the same per-send
counters, the same subscriber statuses and audit trail, the same per-piece report. Replays of
an sg_event_id count once either way. On SQLite and PostgreSQL (hypothesis over generated
streams, plus one fixed stream of 1,500 events).

The streams come as SendGrid sends them: in time order, each message delivered before anyone
opens or clicks it, replays anywhere (a replay is the same event again). Within one batch a
click is judged against every delivery of that batch; one by one, against the deliveries
stored before it; so a stream where a click precedes its own delivery is out of scope here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import time
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from newsletter.db.ledger_tables import sends
from newsletter.db.tables import (
    ENGAGEMENT_COUNTERS,
    engagement,
    send_links,
    subscriber_history,
    subscribers,
    webhook_events,
)
from newsletter.events.apply import apply_batch
from newsletter.events.report import issue_report
from newsletter.providers.sendgrid.webhook import parse_event
from tests.conftest import examples
from tests.public.conftest import Site, event, make_client, post_events

PEOPLE = 14
LINKS = [(1, 1, 1, "https://example.org/a"), (2, 1, 2, "https://example.org/b"),
         (3, 2, 1, "https://example.org/c"), (4, 2, 2, "https://example.org/d"),
         (5, 0, 1, "https://example.org/about")]  # position, piece, link, url
URLS = [url for *_, url in LINKS] + ["https://elsewhere.example/x"]  # one not in the issue
PERSON = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1"
SCANNER = "Mozilla/5.0 (compatible; Mimecast URL scanner)"
APPLE_PROXY = "Mozilla/5.0"
RETIRING = ["bounce", "blocked", "spamreport", "unsubscribe", "group_unsubscribe", "dropped",
            "group_resubscribe"]
_namespaces = itertools.count()


def stream(seed: int, size: int, start: int) -> list[dict]:
    """`size` events of PEOPLE recipients (named by number), in time order, with replays."""
    rng = random.Random(seed)
    at, found = start, []
    delivered, engaged = set(), set()
    while len(found) < size:
        at += rng.choice([0, 0, 0, 1, 1, 2, 3, 6, 15, 40])
        who = rng.randrange(PEOPLE)
        roll = rng.random()
        item: dict = {"who": who, "at": at, "id": f"e{len(found)}"}
        if found and roll < 0.08:  # SendGrid retries: the very same event again
            found.append(dict(rng.choice(found)))
            continue
        if roll < 0.25:
            if who in delivered or who in engaged:
                item["kind"] = "deferred"
            else:
                item["kind"] = "delivered"
                delivered.add(who)
                if rng.random() < 0.3:  # a gateway following a link as it delivers
                    found.append(item)
                    engaged.add(who)
                    item = {**item, "id": f"e{len(found)}", "kind": "click", "ip": "192.0.2.1",
                            "url": rng.choice(URLS), "useragent": PERSON}
        elif roll < 0.50:
            engaged.add(who)
            agent = rng.choice([PERSON, PERSON, APPLE_PROXY, None])
            item.update(kind="open", sg_machine_open=rng.random() < 0.3, ip="203.0.113.7",
                        useragent=agent)
        elif roll < 0.80:
            engaged.add(who)
            item.update(kind="click", url=rng.choice(URLS), ip="198.51.100.20",
                        useragent=rng.choice([PERSON, PERSON, PERSON, SCANNER]))
            if rng.random() < 0.4:  # a scanner following several links at once
                for _ in range(rng.randrange(1, 4)):
                    found.append(item)
                    item = {**item, "id": f"e{len(found)}", "url": rng.choice(URLS)}
        elif roll < 0.92:
            item["kind"] = rng.choice(RETIRING)
        else:
            item["kind"] = rng.choice(["processed", "deferred"])
        found.append(item)
    return found[:size]


def materialize(items: list[dict], prefix: str, send_id: int) -> list[dict]:
    """The stream as SendGrid's JSON for one namespace (addresses, ids and send of its own)."""
    out = []
    for item in items:
        kind, extra = item["kind"], {}
        if kind == "bounce":
            extra = {"type": "bounce", "reason": "550 5.1.1 unknown user"}
        elif kind == "blocked":
            kind, extra = "bounce", {"type": "blocked", "reason": "451 later"}
        elif kind == "dropped":
            extra = {"reason": "Bounced Address"}
        for key in ("url", "ip", "useragent", "sg_machine_open"):
            if item.get(key) is not None:
                extra[key] = item[key]
        out.append(event(kind, f"{prefix}{item['who']}@example.com", f"{prefix}{item['id']}",
                         send=send_id, at=item["at"], **extra))
    return out


def prepare(site: Site, issue: str, prefix: str, created: dt.datetime) -> int:
    """PEOPLE subscribers, one send of `issue` with the LINKS; returns the send id."""
    day_ago = created - dt.timedelta(days=1)
    with site.engine.begin() as conn:
        conn.execute(insert(subscribers), [
            {"email": f"{prefix}{n}@example.com", "email_key": f"{prefix}{n}@example.com",
             "name": "R", "status": "active", "attributes": {}, "source": "test",
             "created_at": day_ago, "updated_at": day_ago, "status_changed_at": day_ago}
            for n in range(PEOPLE)])
        send_id = conn.execute(insert(sends).values(
            issue=issue, segment="everyone", transport="sendgrid", content_hash="x" * 64,
            subject="S", state="completed", total=PEOPLE, accepted=PEOPLE, failed=0, unknown=0,
            batches=1, created_at=created, updated_at=created).returning(sends.c.id)).scalar_one()
        conn.execute(insert(send_links), [
            {"send_id": send_id, "position": position, "piece": piece, "link": link, "url": url,
             "title": f"Piece {piece}", "expert": "expert"}
            for position, piece, link, url in LINKS])
    return send_id


def snapshot(site: Site, issue: str, prefix: str, send_id: int) -> dict:
    """Everything the events left behind in one namespace, with the namespace taken out."""
    def bare(text: str) -> str:
        return text.removeprefix(prefix)

    cols = webhook_events.c
    with site.engine.connect() as conn:
        events = sorted(
            (bare(r.sg_event_id), r.event, bare(r.email_key), r.occurred_at, r.url, r.position,
             r.user_agent, r.ip, r.provider_machine, r.machine, r.reason)
            for r in conn.execute(select(webhook_events).where(cols.send_id == send_id)))
        counters = sorted(
            (bare(r.email_key), *(r._mapping[c] for c in ENGAGEMENT_COUNTERS), r.last_event_at)
            for r in conn.execute(select(engagement).where(engagement.c.send_id == send_id)))
        people = sorted(
            (bare(r.email_key), r.status, r.status_changed_at, r.consented_at)
            for r in conn.execute(select(subscribers).where(
                subscribers.c.email_key.startswith(prefix))))
        history = sorted(
            (bare(r.email_key), r.field, r.before, r.after)
            for r in conn.execute(select(subscribers.c.email_key, subscriber_history.c.field,
                                         subscriber_history.c.before, subscriber_history.c.after)
                                  .join(subscribers).where(
                                      subscribers.c.email_key.startswith(prefix))))
        report = issue_report(conn, issue)
    assert report is not None
    figures = asdict(report)
    del figures["issue"], figures["sends"]
    for health in figures["health"]:  # each send's: the same but for its number
        del health["send"]
    return {"events": events, "counters": counters, "people": people, "history": history,
            "report": figures}


def compare(site: Site, client, seed: int, size: int) -> dict:
    """Apply one stream as one signed request and, in a second namespace, event by event;
    assert both leave the same; return the batch's answer."""
    n = next(_namespaces)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    items = stream(seed, size, int(created.timestamp()) + 60)
    whole, single = f"b{n}-", f"s{n}-"
    whole_send = prepare(site, f"whole-{n}", whole, created)
    single_send = prepare(site, f"single-{n}", single, created)

    answer = post_events(client, site.key, materialize(items, whole, whole_send))
    assert answer.status_code == 200, answer.text
    one_by_one = [apply_batch(site.engine, [parse_event(raw)])
                  for raw in materialize(items, single, single_send)]

    assert snapshot(site, f"whole-{n}", whole, whole_send) == \
        snapshot(site, f"single-{n}", single, single_send)
    batch = answer.json()
    assert batch["received"] == len(items) and batch["ignored"] == 0
    assert batch["applied"] == sum(r.applied for r in one_by_one) == len({i["id"] for i in items})
    assert batch["duplicates"] == sum(r.duplicates for r in one_by_one)
    retired = sum(1 for _, status, *_ in snapshot(site, f"whole-{n}", whole, whole_send)["people"]
                  if status != "active")  # everyone started active
    assert batch["status_changes"] == retired <= sum(r.status_changes for r in one_by_one)
    return batch


@pytest.mark.slow
@settings(max_examples=examples(12), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 150))
def test_one_request_stores_what_one_by_one_stores(site: Site, seed: int, size: int) -> None:
    with make_client(site) as client:
        compare(site, client, seed, size)


@pytest.mark.slow
def test_a_large_mixed_request_stores_what_one_by_one_stores(site: Site) -> None:
    """1,500 events with every kind of event and every verdict (so the equality means
    something): human and machine opens, scanner agents and bursts, clicks too soon after
    delivery, real clicks, bounces, complaints, unsubscribes, resubscribes, replays."""
    with make_client(site) as client:
        batch = compare(site, client, 20261201, 1500)
    assert batch["duplicates"] > 50 and batch["status_changes"] > 5
    with site.engine.connect() as conn:
        reasons = {r for (r,) in conn.execute(select(webhook_events.c.reason).distinct())}
        kinds = {k for (k,) in conn.execute(select(webhook_events.c.event).distinct())}
    assert reasons == {None, "provider", "proxy", "agent", "too-soon", "burst"}
    assert {"delivered", "open", "click", "bounce", "blocked", "spamreport", "unsubscribe",
            "group_unsubscribe", "group_resubscribe", "dropped_invalid"} <= kinds


def test_stored_times_read_back_as_sqlalchemy_writes_them(site: Site, client) -> None:
    """The bulk path converts times with the column type itself: a row it wrote matches a
    comparison SQLAlchemy binds (on SQLite, the same text format)."""
    site.add("t@example.com")
    at = int(time.time()) - 30
    body = json.dumps([event("open", "t@example.com", "t1", at=at)]).encode()
    assert post_events(client, site.key, body).json()["applied"] == 1
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    with site.engine.connect() as conn:
        found = conn.execute(select(webhook_events.c.sg_event_id).where(
            webhook_events.c.occurred_at == when)).scalars().all()
    assert found == ["t1"]
