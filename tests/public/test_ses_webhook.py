"""`POST /webhooks/ses`: SES events through SNS, on SQLite and PostgreSQL.

The app verifies each post against a local stand-in for the SNS hosts (tests.fake_sns: real
TLS with a test CA, the production URL checks), confirms subscriptions once, applies events
through the same path as SendGrid's (statuses, counts, the erasure list) and refuses replays.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.db.tables import engagement, webhook_events, webhook_tokens
from newsletter.providers.ses.sns import MAX_AGE, SnsVerifier
from newsletter.web.ses_webhook import MAX_BODY_BYTES
from tests.fake_sns import (  # noqa: F401  (fixtures)
    CERT_PATH,
    TOPIC,
    FakeSnsHost,
    Signer,
    body,
    headers,
    sns_host,
    sns_pki,
    sns_signer,
    sns_stand_in,
)
from tests.public.conftest import Site
from tests.public.test_erasure import cli, everything
from tests.ses_records import record

PATH = "/webhooks/ses"


@pytest.fixture()
def host(sns_host: FakeSnsHost) -> FakeSnsHost:  # noqa: F811
    return sns_host


@pytest.fixture()
def signer(sns_signer: Signer) -> Signer:  # noqa: F811
    return sns_signer


def ses_client(site: Site, host: FakeSnsHost, topics: str = f"[{TOPIC}]"):
    """A TestClient for the public app with `ses.topic_arns` set and the stand-in's fetcher."""
    from newsletter.web.public import create_app

    with open(site.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write(f"ses: {{topic_arns: {topics}}}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(site.pub, prune=False)
    app.state.sns = SnsVerifier(site.pub.config.ses.topic_arns, host.fetcher())
    return TestClient(app)


@pytest.fixture()
def client(site: Site, host: FakeSnsHost):
    with ses_client(site, host) as test_client:
        yield test_client


def post(client, document: dict[str, Any] | bytes, **extra: str):
    data = document if isinstance(document, bytes) else body(document)
    sent = headers(document) if isinstance(document, dict) else \
        {"Content-Type": "text/plain; charset=UTF-8"}
    return client.post(PATH, content=data, headers={**sent, **extra})


def sent(site: Site, *addresses: str) -> None:
    """Subscribers, and send #1 of the sample issue to them through the outbox."""
    for address in addresses:
        site.add(address)
    result = cli(site, "send", "2026-11-24", "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output


def counts(site: Site, address: str) -> dict[str, int]:
    with site.engine.connect() as conn:
        row = conn.execute(select(engagement).where(
            engagement.c.email_key == address.lower())).mappings().first()
    return {k: v for k, v in (row or {}).items() if isinstance(v, int) and k != "send_id"}


def stored(site: Site, table=webhook_events) -> int:
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- subscription -----------------------------------------------------------------------------
def test_the_subscription_is_confirmed_once(client, host: FakeSnsHost, signer: Signer,
                                            site: Site) -> None:
    confirmation = signer.confirmation()
    answer = post(client, confirmation)
    assert answer.status_code == 200 and answer.json() == {"confirmed": TOPIC}
    [visit] = host.confirmed
    assert visit["Token"] == confirmation["Token"] and visit["TopicArn"] == TOPIC
    again = post(client, confirmation)  # a replay, or SNS delivering it twice
    assert again.status_code == 200 and again.json()["replay"] is True
    assert len(host.confirmed) == 1 and stored(site, webhook_tokens) == 1
    bye = post(client, signer.confirmation(kind="UnsubscribeConfirmation"))
    assert bye.status_code == 200 and len(host.confirmed) == 1  # acknowledged, not acted on


def test_a_confirmation_sns_cannot_take_now_is_retried(client, host: FakeSnsHost,
                                                       signer: Signer, site: Site) -> None:
    confirmation = signer.confirmation()
    host.answers["/"] = (500, b"<Error/>")
    assert post(client, confirmation).status_code == 503  # SNS retries it
    assert stored(site, webhook_tokens) == 0
    del host.answers["/"]
    assert post(client, confirmation).json() == {"confirmed": TOPIC}
    assert len(host.confirmed) == 1


# -- events -----------------------------------------------------------------------------------
def test_each_kind_of_event_reaches_statuses_and_counts(client, signer: Signer,
                                                        site: Site) -> None:
    people = ["opener@example.com", "bounced@example.com", "complained@example.com",
              "full@example.com", "listed@example.com"]
    sent(site, *people)
    opener, bounced, complained, full, listed = people
    records = [record("Delivery", opener), record("Open", opener), record("Click", opener),
               record("Bounce", bounced), record("Complaint", complained),
               record("Bounce", full, section={"bounceType": "Transient",
                                               "bounceSubType": "MailboxFull"}),
               record("Bounce", listed, section={"bounceSubType": "OnAccountSuppressionList"}),
               record("Send", opener)]
    answers = [post(client, signer.notification(r, version="2")) for r in records]
    assert [a.status_code for a in answers] == [200] * len(records)
    assert sum(a.json()["applied"] for a in answers) == 7
    assert answers[-1].json()["received"] == 0  # a Send record holds nothing to apply
    assert {p: site.status(p) for p in people} == {
        opener: "active", bounced: "bounced", complained: "complained", full: "active",
        listed: "bounced"}
    found = counts(site, opener)
    assert (found["delivered"], found["opens"], found["clicks"]) == (1, 1, 1)
    assert counts(site, bounced)["bounces"] == 1 and counts(site, full)["blocked"] == 1
    with site.engine.connect() as conn:
        ids = conn.execute(select(webhook_events.c.sg_event_id)).scalars().all()
        url = conn.execute(select(webhook_events.c.url).where(
            webhook_events.c.event == "click")).scalar_one()
    assert len(ids) == 7 and all(i.startswith("ses:") for i in ids)
    assert url == "https://example.org/2026-11-24/grid"


def test_a_replayed_message_applies_nothing(client, signer: Signer, site: Site) -> None:
    sent(site, "reader@example.com")
    document = signer.notification(record("Open", "reader@example.com"))
    first = post(client, document)
    assert first.status_code == 200 and first.json()["applied"] == 1
    for _ in range(3):  # the same message again: refused
        again = post(client, document)
        assert again.status_code == 200 and again.json() == {"replay": True, "applied": 0}
    # the same record in a new SNS message (SES published it twice): one event
    twice = post(client, signer.notification(document["Message"]))
    assert twice.json()["applied"] == 0 and twice.json()["duplicates"] == 1
    assert counts(site, "reader@example.com")["opens"] == 1 and stored(site) == 1


def test_a_message_older_than_snss_retries_is_refused(client, signer: Signer,
                                                      site: Site) -> None:
    site.add("reader@example.com")
    old = dt.datetime.now(dt.UTC) - MAX_AGE - dt.timedelta(minutes=5)
    answer = post(client, signer.notification(record("Bounce", "reader@example.com"), at=old))
    assert answer.status_code == 403 and "outside the accepted window" in answer.text
    assert site.status("reader@example.com") == "active" and stored(site) == 0


def _hostile(signer: Signer) -> list[tuple[str, bytes, dict[str, str], int]]:
    good = signer.notification(record("Bounce", "reader@example.com"))
    forged = {**good, "Message": good["Message"].replace("reader@", "other@")}
    other_topic = signer.notification(record("Bounce", "reader@example.com"),
                                      topic=TOPIC.replace("newsletter-events", "theirs"))
    off_host = signer.sign({**good, "SigningCertURL": "https://evil.example.org" + CERT_PATH})
    plain = {"Content-Type": "text/plain"}
    return [
        ("not json", b"Bounce! reader@example.com", plain, 400),
        ("a list", b"[1, 2]", plain, 400),
        ("nested", b"[" * 200_000 + b"]" * 200_000, plain, 400),
        ("deep", b"[" * 100_000, plain, 400),
        ("binary", bytes(range(256)) * 8, plain, 400),
        ("raw delivery", json.dumps(record("Bounce", "reader@example.com")).encode(), plain,
         400),
        ("forged", body(forged), headers(forged), 403),
        ("other topic", body(other_topic), headers(other_topic), 403),
        ("certificate elsewhere", body(off_host), headers(off_host), 403),
        ("type header", body(good), {**headers(good), "x-amz-sns-message-type":
                                     "SubscriptionConfirmation"}, 403),
        ("too large", b"{" + b" " * MAX_BODY_BYTES + b"}", plain, 413),
    ]


def test_hostile_posts_change_nothing(client, signer: Signer, site: Site,
                                      host: FakeSnsHost) -> None:
    site.add("reader@example.com")
    site.add("other@example.com")
    for name, data, sent_headers, status in _hostile(signer):
        answer = client.post(PATH, content=data, headers=sent_headers)
        assert answer.status_code == status, (name, answer.text)
    assert site.status("reader@example.com") == site.status("other@example.com") == "active"
    assert stored(site) == stored(site, webhook_tokens) == 0
    assert sum(host.requests.values()) <= 1  # at most the certificate, fetched once


def test_records_that_hold_nothing_usable_are_acknowledged(client, signer: Signer,
                                                           site: Site) -> None:
    for text in ["not json", json.dumps({"eventType": "Teleport", "mail": {}}),
                 json.dumps(record("Delivery", "reader@example.com",
                                   section={"recipients": [17, "no-at-sign"]}))]:
        answer = post(client, signer.notification(text))
        assert answer.status_code == 200 and answer.json()["applied"] == 0
        assert answer.json()["ignored"] >= 1  # SNS need not retry it for an hour
    assert stored(site) == 0


def test_without_topics_the_route_is_unavailable(site: Site, host: FakeSnsHost,
                                                 signer: Signer) -> None:
    with ses_client(site, host, topics="[]") as client:
        answer = post(client, signer.notification(record("Open", "r@example.com")))
    assert answer.status_code == 503 and "ses.topic_arns" in answer.text
    assert not host.requests


def test_events_for_an_erased_address_leave_no_trace(client, signer: Signer,
                                                     site: Site) -> None:
    address = "Leaving.Reader@example.com"
    sent(site, address, "stays@example.com")
    assert post(client, signer.notification(record("Open", address))).json()["applied"] == 1
    result = cli(site, "subscribers", "forget", address, "--yes")
    assert result.exit_code == 0, result.output
    late = [record("Delivery", address), record("Bounce", address.upper()),
            record("Click", address, section={
                "link": f"https://example.org/?who={address.lower()}",
                "userAgent": "Erasure-Test-Agent/1.0", "ipAddress": "203.0.113.9"}),
            record("Complaint", address)]
    for found in late:
        assert post(client, signer.notification(found)).json()["applied"] == 1
    dump = everything(site)
    assert address.lower() not in dump and "erasure-test-agent" not in dump
    assert "203.0.113" not in dump and site.status(address) is None
    with site.engine.connect() as conn:  # counted for the send, for nobody
        totals = conn.execute(select(func.sum(engagement.c.opens), func.sum(engagement.c.clicks),
                                     func.sum(engagement.c.bounces))).one()
    assert tuple(totals) == (1, 1, 1)
