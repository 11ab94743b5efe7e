"""SendGrid Event Webhook: signature over the raw body, freshness, dedup, statuses, counts."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, insert, select

from newsletter.db.ledger_tables import sends
from newsletter.db.tables import engagement, webhook_events
from newsletter.events.stats import engagement_by_send
from tests.web.public.conftest import Site, event, make_client, post_events, signed


def new_send(site: Site) -> int:
    now = dt.datetime.now(dt.UTC)
    with site.engine.begin() as conn:
        return conn.execute(insert(sends).values(
            issue="2026-11-24", segment="everyone", transport="sendgrid", content_hash="x" * 64,
            subject="S", state="completed", total=3, accepted=3, failed=0, unknown=0, batches=1,
            created_at=now, updated_at=now).returning(sends.c.id)).scalar_one()


def stored_events(site: Site) -> int:
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(webhook_events)).scalar_one()


def test_each_event_type_sets_the_documented_status(site: Site, client) -> None:
    expected = {
        "bounce": ("bounced", {"type": "bounce", "reason": "550 5.1.1 no such user"}),
        "blocked": ("active", {"event": "bounce", "type": "blocked", "reason": "451 later"}),
        "spam": ("complained", {"event": "spamreport"}),
        "unsub": ("unsubscribed", {"event": "unsubscribe"}),
        "group": ("unsubscribed", {"event": "group_unsubscribe", "asm_group_id": 7}),
        "invalid": ("bounced", {"event": "dropped", "reason": "Invalid"}),
        "bounced-address": ("bounced", {"event": "dropped", "reason": "Bounced Address"}),
        "dropped-other": ("active", {"event": "dropped", "reason": "Invalid SMTPAPI header"}),
        "delivered": ("active", {"event": "delivered", "response": "250 OK"}),
    }
    events = []
    for n, (name, (_, fields)) in enumerate(expected.items()):
        site.add(f"{name}@example.com", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        events.append(event(fields.pop("event", "bounce"), f"{name}@example.com", f"e{n}",
                            **fields))
    site.add("back@example.com", "unsubscribed",
             changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    events.append(event("group_resubscribe", "back@example.com", "e-back", asm_group_id=7))
    answer = post_events(client, site.key, events)
    assert answer.status_code == 200
    assert answer.json() == {"received": 10, "applied": 10, "duplicates": 0, "ignored": 0,
                             "status_changes": 7}
    found = {k: v[0] for k, v in site.statuses().items()}
    assert found == {f"{name}@example.com": status for name, (status, _) in expected.items()} \
        | {"back@example.com": "active"}


def test_engagement_is_counted_per_send_and_recipient(site: Site, client) -> None:
    send_id = new_send(site)
    other = new_send(site)
    for who in ("a", "b", "c"):
        site.add(f"{who}@example.com")
    events = [
        event("processed", "a@example.com", "p1", send=send_id),
        event("delivered", "a@example.com", "d1", send=send_id),
        event("delivered", "b@example.com", "d2", send=send_id),
        event("deferred", "c@example.com", "f1", send=send_id, attempt="1"),
        event("open", "a@example.com", "o1", send=send_id, sg_machine_open=False),
        event("open", "a@example.com", "o2", send=send_id),
        event("open", "b@example.com", "o3", send=send_id),
        event("click", "a@example.com", "c1", send=send_id, url="https://example.org/"),
        event("bounce", "c@example.com", "b1", send=send_id, type="bounce"),
        event("unsubscribe", "b@example.com", "u1", send=send_id),
        event("delivered", "a@example.com", "d9", send=other),
        event("delivered", "a@example.com", "x1", send=99999),  # not a send of ours
        event("delivered", "a@example.com", "x2", send="test-20261125"),  # a test send
    ]
    assert post_events(client, site.key, events).json()["applied"] == 13
    with site.engine.connect() as conn:
        totals = engagement_by_send(conn, [send_id, other, 12345])
        a_row = conn.execute(select(engagement).where(engagement.c.send_id == send_id,
                                                      engagement.c.email_key == "a@example.com"))
        a_row = a_row.one()
    assert totals[send_id].as_dict() == {
        "delivered": 2, "opens": 3, "clicks": 1, "deferred": 1, "bounces": 1, "blocked": 0,
        "dropped": 0, "complaints": 0, "unsubscribes": 1, "unique_opens": 2, "unique_clicks": 1}
    assert totals[other].delivered == 1 and totals[12345].delivered == 0
    assert (a_row.delivered, a_row.opens, a_row.clicks) == (1, 2, 1)


def test_redelivered_events_are_applied_once(site: Site, client) -> None:
    send_id = new_send(site)
    site.add("a@example.com")
    batch = [event("open", "a@example.com", f"o{n}", send=send_id) for n in range(5)]
    batch.append(batch[0])  # a duplicate inside one batch too
    first = post_events(client, site.key, batch).json()
    again = post_events(client, site.key, batch[:3] + [event("open", "a@example.com", "o9",
                                                              send=send_id)]).json()
    assert (first["applied"], first["duplicates"]) == (5, 1)
    assert (again["applied"], again["duplicates"]) == (1, 3)
    with site.engine.connect() as conn:
        assert engagement_by_send(conn, [send_id])[send_id].opens == 6
    assert stored_events(site) == 6


def _attacks(site: Site, key: ec.EllipticCurvePrivateKey) -> list[tuple[bytes, dict]]:
    body = json.dumps([event("spamreport", "a@example.com", "s1")]).encode()
    other = ec.generate_private_key(ec.SECP256R1())
    good = signed(key, body)
    return [
        (body, signed(other, body)),  # signed by someone else
        (body.replace(b"a@example.com", b"b@example.com"), good),  # body altered after signing
        (body, {**good, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()) - 1)}),
        (body, signed(key, body, at=int(time.time()) - 301)),  # older than 5 minutes
        (body, signed(key, body, at=int(time.time()) + 3600)),  # from the future
        (body, {"Content-Type": "application/json"}),  # unsigned
        (body, {**good, "X-Twilio-Email-Event-Webhook-Signature": "bm90IGEgc2lnbmF0dXJl"}),
        (body, {**good, "X-Twilio-Email-Event-Webhook-Signature": "%%%"}),
    ]


def test_bad_signatures_and_stale_timestamps_are_refused(site: Site, client) -> None:
    site.add("a@example.com")
    site.add("b@example.com")
    for body, headers in _attacks(site, site.key):
        answer = client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert answer.status_code == 403, headers
    assert {v[0] for v in site.statuses().values()} == {"active"}
    assert stored_events(site) == 0


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"event": "bounce"}', b"\xff\xfe",
                                  b"[" * 100_000 + b"]" * 100_000])
def test_malformed_bodies_get_400_and_change_nothing(site: Site, client, body: bytes) -> None:
    site.add("a@example.com")
    answer = post_events(client, site.key, body)
    assert answer.status_code == 400
    assert site.status("a@example.com") == "active" and stored_events(site) == 0


def test_unknown_types_and_broken_items_are_ignored(site: Site, client) -> None:
    site.add("a@example.com")
    events = [
        event("something_new", "a@example.com", "n1"),
        {"event": "bounce", "email": "a@example.com"},  # no sg_event_id: cannot dedup
        {"event": "spamreport", "sg_event_id": "n2"},  # no address
        "a string", 42, None, [],
        event("spamreport", ["a@example.com"], "n3"),  # type: ignore[arg-type]
    ]
    answer = post_events(client, site.key, events)
    assert answer.status_code == 200
    assert answer.json()["ignored"] == 8 and answer.json()["applied"] == 0
    assert site.status("a@example.com") == "active" and stored_events(site) == 0


def test_signature_covers_the_raw_bytes_as_sent(site: Site, client) -> None:
    """Whitespace and escapes a re-encoder would change must still verify."""
    site.add("ünï@example.com")
    body = ('[ {"email" : "\\u00fcn\\u00ef@example.com", "event":"spamreport",\n'
            f' "sg_event_id":"raw1", "timestamp": {int(time.time())} }} ]').encode()
    answer = post_events(client, site.key, body)
    assert answer.status_code == 200 and answer.json()["applied"] == 1
    assert site.status("ünï@example.com") == "complained"


def test_an_old_event_does_not_undo_a_later_resubscribe(site: Site, client) -> None:
    now = dt.datetime.now(dt.UTC)
    site.add("a@example.com", changed=now, consented=now)  # confirmed a sign-up just now
    site.add("b@example.com", "bounced", changed=dt.datetime.now(dt.UTC))
    hour_ago = int(time.time()) - 3600
    post_events(client, site.key, [
        event("unsubscribe", "a@example.com", "old1", at=hour_ago),
        event("spamreport", "b@example.com", "old2", at=hour_ago),  # worse news still counts
    ])
    assert site.status("a@example.com") == "active"
    assert site.status("b@example.com") == "complained"


def test_without_a_verification_key_the_webhook_is_closed(site: Site, monkeypatch) -> None:
    monkeypatch.delenv("SENDGRID_WEBHOOK_PUBLIC_KEY")
    site.add("a@example.com")
    with make_client(site) as client:
        answer = post_events(client, site.key, [event("spamreport", "a@example.com", "z")])
    assert answer.status_code == 503 and site.status("a@example.com") == "active"


def test_concurrent_overlapping_batches_apply_each_event_once(site: Site) -> None:
    """SendGrid posts in parallel and retries: overlapping batches from 8 threads. Each
    person's last human engagement is still their latest human open or click stored."""
    from concurrent.futures import ThreadPoolExecutor

    from newsletter.events.apply import apply_batch
    from newsletter.providers.sendgrid.webhook import parse_event
    from tests.events.test_last_engaged import reference, stored

    send_id = new_send(site)
    for n in range(40):
        site.add(f"r{n}@example.com", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    kinds = ["delivered", "open", "click", "open", "unsubscribe"]
    now = int(time.time())
    pool = [parse_event(event(kinds[n % 5], f"r{(n * 7) % 40}@example.com", f"id{n:04d}",
                              send=send_id, at=now - (n * 37) % 3000)) for n in range(400)]
    batches = [pool[start : start + 100] for start in range(0, 350, 50)]  # each overlaps half
    batches += [list(reversed(b)) for b in batches]  # and in the opposite order
    with ThreadPoolExecutor(8) as workers:
        reports = list(workers.map(lambda b: apply_batch(site.engine, b), batches))
    assert sum(r.applied for r in reports) == 400
    assert sum(r.applied + r.duplicates for r in reports) == sum(len(b) for b in batches)
    with site.engine.connect() as conn:
        totals = engagement_by_send(conn, [send_id])[send_id]
    assert (totals.delivered, totals.opens, totals.clicks, totals.unsubscribes) == (80, 160,
                                                                                      80, 80)
    assert stored_events(site) == 400
    expected = reference(site.engine)
    assert stored(site.engine) == expected and any(expected.values())
