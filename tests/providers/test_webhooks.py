"""`serve`'s Postmark and Mailgun webhooks: authentication, replay, and what each event does,
on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.db.tables import webhook_events
from newsletter.providers.mailgun.webhook import signature_of
from tests.web.public.conftest import Site, make_client

USER, PASSWORD, KEY = "postmark-hooks", "a-long-webhook-password", "key-mailgun-signing-key"


@pytest.fixture()
def hooks(site: Site, monkeypatch: pytest.MonkeyPatch):
    for name, value in {"POSTMARK_WEBHOOK_USER": USER, "POSTMARK_WEBHOOK_PASSWORD": PASSWORD,
                        "MAILGUN_WEBHOOK_SIGNING_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
        site.env[name] = value
    with make_client(site) as client:
        yield client


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def postmark_post(client, event: dict[str, Any], **headers: str):
    return client.post("/webhooks/postmark", content=json.dumps(event),
                       headers={**basic(), "Content-Type": "application/json", **headers})


def bounce(email: str, kind: str = "HardBounce", bounce_id: int = 901542550) -> dict:
    return {"RecordType": "Bounce", "ID": bounce_id, "Type": kind, "TypeCode": 1,
            "MessageID": "2706ee8a-737c-4285-b032-ccd317af53ed", "Email": email,
            "BouncedAt": "2026-11-24T16:28:50.3963933-05:00", "Details": "smtp;550 5.1.1 no",
            "Metadata": {"nl_send": "77", "nl_recipient": "5"}, "Tag": "2026-11-24"}


def mailgun_post(client, data: dict[str, Any], *, token: str | None = None,
                 at: int | None = None, key: str = KEY):
    token = token or secrets.token_hex(25)
    stamp = str(int(time.time()) if at is None else at)
    payload = {"signature": {"timestamp": stamp, "token": token,
                             "signature": signature_of(key, stamp, token)},
               "event-data": data}
    return client.post("/webhooks/mailgun", content=json.dumps(payload),
                       headers={"Content-Type": "application/json"})


def failed(email: str, severity: str = "permanent", reason: str = "bounce",
           event_id: str = "G9Bn5sl1TC6nu79C8C0bwg") -> dict:
    return {"event": "failed", "id": event_id, "severity": severity, "reason": reason,
            "recipient": email, "timestamp": time.time(),
            "delivery-status": {"code": 550, "message": "5.1.1 no such user"},
            "user-variables": {"nl_send": "77", "nl_recipient": "5", "nl_issue": "2026-11-24"}}


def stored(site: Site) -> dict[str, str]:
    with site.engine.connect() as conn:
        return dict(conn.execute(select(webhook_events.c.sg_event_id,
                                        webhook_events.c.event)).all())


# -- Postmark ---------------------------------------------------------------------------------
def test_postmark_needs_its_credentials(site: Site) -> None:
    site.add("gone@example.org")
    with make_client(site) as client:  # no credentials configured
        assert postmark_post(client, bounce("gone@example.org")).status_code == 503


def test_postmark_wrong_credentials_change_nothing(site: Site, hooks) -> None:
    site.add("gone@example.org")
    for headers in (basic(password="wrong"), basic(user="other"), {"Authorization": "Bearer x"},
                    {"Authorization": "Basic !!!"}):
        answer = postmark_post(hooks, bounce("gone@example.org"), **headers)
        assert answer.status_code == 401 and "Basic" in answer.headers["www-authenticate"]
    assert site.status("gone@example.org") == "active" and stored(site) == {}


@pytest.mark.parametrize("event,status", [
    (bounce("r@example.org"), "bounced"),
    (bounce("r@example.org", "BadEmailAddress"), "bounced"),
    (bounce("r@example.org", "SoftBounce"), "active"),
    (bounce("r@example.org", "Transient"), "active"),
    ({**bounce("r@example.org", "SpamComplaint"), "RecordType": "SpamComplaint"}, "complained"),
    ({"RecordType": "SubscriptionChange", "MessageID": "m1", "Recipient": "r@example.org",
      "Origin": "Recipient", "SuppressSending": True, "SuppressionReason": "ManualSuppression",
      "ChangedAt": "2026-11-24T17:17:32Z", "Metadata": {"nl_send": "77"}}, "unsubscribed"),
    ({"RecordType": "Delivery", "MessageID": "m1", "Recipient": "r@example.org",
      "DeliveredAt": "2026-11-24T13:28:10.2735393-04:00", "Metadata": {}}, "active"),
])
def test_postmark_events_and_what_they_do(site: Site, hooks, event: dict, status: str) -> None:
    site.add("r@example.org")
    answer = postmark_post(hooks, event)
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == 1
    assert site.status("r@example.org") == status
    again = postmark_post(hooks, event)  # Postmark retries: the same event, not a second one
    assert again.json() == {**answer.json(), "applied": 0, "duplicates": 1,
                            "status_changes": 0}
    assert len(stored(site)) == 1


def test_postmark_resubscribe_only_by_the_recipient(site: Site, hooks) -> None:
    site.add("r@example.org", status="unsubscribed",
             changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    change = {"RecordType": "SubscriptionChange", "MessageID": "m1", "Recipient": "r@example.org",
              "SuppressSending": False,
              "ChangedAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert postmark_post(hooks, {**change, "Origin": "Admin"}).json()["ignored"] == 1
    assert site.status("r@example.org") == "unsubscribed"
    assert postmark_post(hooks, {**change, "Origin": "Recipient"}).json()["applied"] == 1
    assert site.status("r@example.org") == "active"


def test_postmark_opens_and_clicks_keep_their_detail(site: Site, hooks) -> None:
    site.add("r@example.org")
    click = {"RecordType": "Click", "MessageID": "m1", "Recipient": "r@example.org",
             "ReceivedAt": "2026-11-24T15:21:11.9065619Z", "OriginalLink": "https://example.org/a",
             "UserAgent": "Mozilla/5.0", "Geo": {"IP": "192.0.2.77"}, "Metadata": {}}
    assert postmark_post(hooks, click).status_code == 200
    with site.engine.connect() as conn:
        row = conn.execute(select(webhook_events)).one()
    assert (row.event, row.url, row.user_agent, row.ip) == (
        "click", "https://example.org/a", "Mozilla/5.0", "192.0.2.0/24")


def test_postmark_unusable_posts(site: Site, hooks) -> None:
    assert postmark_post(hooks, {"RecordType": "Inbound", "FromFull": {}}).json()["ignored"] == 1
    assert postmark_post(hooks, {"RecordType": "Bounce", "Type": "AutoResponder",
                                 "Email": "r@example.org", "ID": 5}).json()["ignored"] == 1
    answer = hooks.post("/webhooks/postmark", content=b"{not json", headers=basic())
    assert answer.status_code == 400
    big = hooks.post("/webhooks/postmark", content=b"[" + b" " * 300_000 + b"]",
                     headers=basic())
    assert big.status_code == 413
    assert stored(site) == {}


# -- Mailgun ----------------------------------------------------------------------------------
def test_mailgun_needs_its_signing_key(site: Site) -> None:
    with make_client(site) as client:
        assert mailgun_post(client, failed("r@example.org")).status_code == 503


def test_mailgun_bad_or_stale_signatures_change_nothing(site: Site, hooks) -> None:
    site.add("r@example.org")
    assert mailgun_post(hooks, failed("r@example.org"), key="another-key").status_code == 403
    assert mailgun_post(hooks, failed("r@example.org"), at=int(time.time()) - 400) \
        .status_code == 403
    assert mailgun_post(hooks, failed("r@example.org"), at=int(time.time()) + 400) \
        .status_code == 403
    unsigned = hooks.post("/webhooks/mailgun", json={"event-data": failed("r@example.org")})
    assert unsigned.status_code == 403
    assert site.status("r@example.org") == "active" and stored(site) == {}


def test_mailgun_token_replay_is_refused(site: Site, hooks) -> None:
    site.add("r@example.org")
    site.add("other@example.org")
    token = secrets.token_hex(25)
    stamp = int(time.time())
    first = mailgun_post(hooks, {**failed("r@example.org"), "severity": "temporary"},
                         token=token, at=stamp)
    assert first.status_code == 200 and first.json()["applied"] == 1
    # the signature covers only timestamp + token: a replay with other event data is refused
    replay = mailgun_post(hooks, failed("other@example.org", event_id="other"), token=token,
                          at=stamp)
    assert replay.status_code == 406
    assert site.status("other@example.org") == "active" and len(stored(site)) == 1


@pytest.mark.parametrize("data,status", [
    (failed("r@example.org"), "bounced"),
    (failed("r@example.org", "temporary", "generic"), "active"),
    (failed("r@example.org", reason="old"), "active"),
    (failed("r@example.org", reason="suppress-complaint"), "complained"),
    (failed("r@example.org", reason="suppress-unsubscribe"), "unsubscribed"),
    (failed("r@example.org", reason="espblock"), "active"),
    ({"event": "complained", "id": "c1", "recipient": "r@example.org",
      "timestamp": time.time()}, "complained"),
    ({"event": "unsubscribed", "id": "u1", "recipient": "r@example.org",
      "timestamp": time.time()}, "unsubscribed"),
    ({"event": "delivered", "id": "d1", "recipient": "r@example.org",
      "timestamp": time.time()}, "active"),
])
def test_mailgun_events_and_what_they_do(site: Site, hooks, data: dict, status: str) -> None:
    site.add("r@example.org")
    answer = mailgun_post(hooks, data)
    assert answer.status_code == 200 and answer.json()["applied"] == 1, answer.text
    assert site.status("r@example.org") == status
    again = mailgun_post(hooks, data)  # Mailgun retries with a new signature: same event id
    assert again.status_code == 200 and again.json()["duplicates"] == 1


def test_mailgun_clicks_carry_the_send(site: Site, hooks) -> None:
    site.add("r@example.org")
    click = {"event": "clicked", "id": "k1", "recipient": "r@example.org",
             "timestamp": time.time(), "url": "https://example.org/x", "ip": "2001:db8:1:2::7",
             "client-info": {"user-agent": "Mozilla/5.0"}, "user-variables": {"nl_send": "77"}}
    assert mailgun_post(hooks, click).status_code == 200
    with site.engine.connect() as conn:
        row = conn.execute(select(webhook_events)).one()
    assert (row.event, row.url, row.ip, row.send_id) == ("click", "https://example.org/x",
                                                         "2001:db8:1::/48", 77)
    assert row.sg_event_id.startswith("mg:k1:")


# -- one policy for every provider ------------------------------------------------------------
def test_soft_bounces_from_every_provider_count_toward_one_limit(site: Site, hooks) -> None:
    """The third soft bounce of an address within 30 days retires it, whichever providers
    reported the three (newsletter.events.policy): SendGrid's `blocked`, Postmark's
    SoftBounce, Mailgun's `old`; each is stored and counted as the same soft bounce."""
    from tests.web.public.conftest import event, post_events

    site.add("r@example.org", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
    site.add("two@example.org", changed=dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
    hours_ago = int(time.time()) - 3 * 3600
    sendgrid = [event("bounce", who, f"sg-{who}", at=hours_ago, type="blocked",
                      reason="451 try later") for who in ("r@example.org", "two@example.org")]
    assert post_events(hooks, site.key, sendgrid).json()["status_changes"] == 0
    when = dt.datetime.fromtimestamp(hours_ago + 3600, dt.UTC).isoformat()
    for n, who in enumerate(("r@example.org", "two@example.org"), start=1):
        answer = postmark_post(hooks, {**bounce(who, "SoftBounce", bounce_id=n),
                                       "BouncedAt": when})
        assert answer.json() == {"received": 1, "applied": 1, "duplicates": 0, "ignored": 0,
                                 "status_changes": 0}
    assert site.status("r@example.org") == site.status("two@example.org") == "active"
    third = mailgun_post(hooks, failed("r@example.org", reason="old"))
    assert third.json()["status_changes"] == 1
    assert (site.status("r@example.org"), site.status("two@example.org")) == ("bounced",
                                                                            "active")
    with site.engine.connect() as conn:
        names = conn.execute(select(webhook_events.c.event).where(
            webhook_events.c.email_key == "r@example.org")).scalars().all()
    assert names == ["blocked"] * 3
