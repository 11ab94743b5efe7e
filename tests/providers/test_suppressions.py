"""`suppressions sync --provider postmark|mailgun` and the sync before a send, against the
fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from newsletter.db.tables import subscribers
from tests.dispatch.conftest import SLUG, Pub, add_people


def _statuses(pub: Pub) -> dict[str, str]:
    with pub.engine.connect() as conn:
        return dict(conn.execute(select(subscribers.c.email, subscribers.c.status)).all())


def _postmark_row(email: str, reason: str, days_ago: int = 1) -> dict:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return {"EmailAddress": email, "SuppressionReason": reason, "Origin": "Recipient",
            "CreatedAt": when.strftime("%Y-%m-%dT%H:%M:%S.1234567-05:00")}


def test_postmark_sync_reads_the_streams_dump(pub: Pub, postmark) -> None:
    people = add_people(pub.engine, 6)
    postmark.suppressions = [_postmark_row(people[0], "HardBounce"),
                             _postmark_row(people[1].upper(), "SpamComplaint"),
                             _postmark_row(people[2], "ManualSuppression"),
                             _postmark_row("stranger@example.org", "HardBounce")]
    result = pub.cli("suppressions", "sync", "--provider", "postmark")
    assert result.exit_code == 0, result.output
    assert "Fetched 4 stream broadcast; 3 subscriber(s) changed status." in result.output
    statuses = _statuses(pub)
    assert [statuses[p] for p in people] == ["bounced", "complained", "unsubscribed",
                                             "active", "active", "active"]
    again = pub.cli("suppressions", "sync", "--provider", "postmark")
    assert "0 subscriber(s) changed status" in again.output
    dumps = [r for r in postmark.requests if r[1].endswith("/suppressions/dump")]
    assert len(dumps) == 2 and dumps[0][1] == "/message-streams/broadcast/suppressions/dump"


def test_mailgun_sync_follows_the_pages_of_each_list(pub: Pub, mailgun) -> None:
    people = add_people(pub.engine, 2300)
    stamp = "Fri, 20 Nov 2026 11:02:55 UTC"
    mailgun.lists["bounces"] = [{"address": p, "code": "550", "error": "no",
                                 "created_at": stamp} for p in people[:2100]]
    mailgun.lists["complaints"] = [{"address": people[2100], "created_at": stamp}]
    mailgun.lists["unsubscribes"] = [{"address": people[2101], "tags": ["*"],
                                      "created_at": stamp}]
    result = pub.cli("suppressions", "sync", "--provider", "mailgun")
    assert result.exit_code == 0, result.output
    assert ("Fetched 2100 bounces, 1 complaints, 1 unsubscribes; 2102 subscriber(s) changed "
            "status.") in result.output
    statuses = _statuses(pub)
    assert {statuses[p] for p in people[:2100]} == {"bounced"}
    assert (statuses[people[2100]], statuses[people[2101]]) == ("complained", "unsubscribed")
    assert statuses[people[2200]] == "active"
    pages = [r for r in mailgun.requests if r[1].endswith("/bounces")]
    assert len(pages) == 4  # three full pages of 1000, then an empty one


def test_mailgun_sync_refuses_a_next_page_elsewhere(pub: Pub, mailgun) -> None:
    from tests.fake_http import Answer

    mailgun.route("GET", r"/v3/([^/]+)/bounces", lambda fake, request: Answer(200, {
        "items": [{"address": "a@example.org"}],
        "paging": {"next": "https://attacker.example/v3/x/bounces?page=next"}}))
    result = pub.cli("suppressions", "sync", "--provider", "mailgun")
    assert result.exit_code == 1 and "next page points outside the list" in result.output


@pytest.mark.parametrize("provider", ["postmark", "mailgun"])
def test_a_send_syncs_first_and_skips_the_suppressed(pub: Pub, provider: str,
                                                     request: pytest.FixtureRequest) -> None:
    fake = request.getfixturevalue(provider)
    people = add_people(pub.engine, 5)
    if provider == "postmark":
        fake.suppressions = [_postmark_row(people[2], "SpamComplaint")]
    else:
        fake.lists["complaints"] = [{"address": people[2],
                                     "created_at": "Fri, 20 Nov 2026 11:02:55 UTC"}]
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", provider, "--yes")
    assert result.exit_code == 0, result.output
    assert "suppressions synced" in result.output and "1 subscriber(s) changed" in result.output
    assert set(fake.recipients()) == {p.lower() for p in people} - {people[2].lower()}


def test_a_sync_that_fails_does_not_stop_the_send(pub: Pub, postmark) -> None:
    from tests.fake_http import Answer

    add_people(pub.engine, 3)
    postmark.route("GET", r"/message-streams/([^/]+)/suppressions/dump",
                   lambda fake, request: Answer(500, {"ErrorCode": 100, "Message": "down"}))
    result = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "postmark", "--yes")
    assert result.exit_code == 0, result.output
    assert "could not sync Postmark suppressions" in " ".join(result.output.split())
    assert len(postmark.recipients()) == 3
