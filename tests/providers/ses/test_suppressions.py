"""SES's account-level suppression list: `suppressions sync --provider ses`, the sync a new SES
send runs first, and the release after a confirmed sign-up; the real boto3 client against
moto's server (tests.fake_ses), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update

from newsletter.compose.publication import Publication
from newsletter.db.tables import subscribers, suppression_sync
from newsletter.events.suppressions import release_quietly
from tests.dispatch.conftest import Pub, add_people
from tests.fake_ses import FakeSes
from tests.providers.ses.test_send import SEND

SYNC = ["suppressions", "sync", "--provider", "ses"]


def _statuses(pub: Pub) -> dict[str, str]:
    with pub.engine.connect() as conn:
        return dict(conn.execute(select(subscribers.c.email_key, subscribers.c.status)).all())


def _entries(addresses: list[str], reason: str, at: float) -> list[dict]:
    return [{"EmailAddress": a, "Reason": reason, "LastUpdateTime": at} for a in addresses]


def test_sync_retires_the_addresses_ses_suppresses_and_then_reads_only_whats_new(
        ses_pub: Pub, ses: FakeSes) -> None:
    people = add_people(ses_pub.engine, 6)
    start = time.time() - 3600
    ses.suppress(_entries(people[:2], "BOUNCE", start)
                 + _entries([people[2].upper()], "COMPLAINT", start + 10)
                 + _entries(["stranger@example.net"], "BOUNCE", start + 20))
    result = ses_pub.cli(*SYNC)
    assert result.exit_code == 0, result.output
    assert "Fetched 4 ses suppressions; 3 subscriber(s) changed status." in result.output
    statuses = _statuses(ses_pub)
    assert [statuses[p] for p in people] == ["bounced", "bounced", "complained", "active",
                                             "active", "active"]
    assert "stranger@example.net" not in statuses  # nobody is added by a sync
    with ses_pub.engine.connect() as conn:
        marks = dict(conn.execute(select(suppression_sync.c.kind,
                                         suppression_sync.c.last_created)).all())
    assert marks == {"ses:us-east-1": int(start + 20)}  # the list is the region's

    ses.suppress(_entries([people[3]], "BOUNCE", start + 30))
    again = ses_pub.cli(*SYNC)
    assert again.exit_code == 0, again.output
    # from the mark on: the newest entry seen (its second again) and the new one
    assert "Fetched 2 ses suppressions; 1 subscriber(s) changed status." in again.output
    full = ses_pub.cli(*SYNC, "--full")
    assert "Fetched 5 ses suppressions; 0 subscriber(s) changed status." in full.output
    assert _statuses(ses_pub)[people[3]] == "bounced"


def test_sync_follows_the_list_page_by_page(ses_pub: Pub, ses: FakeSes) -> None:
    people = add_people(ses_pub.engine, 2345)
    start = time.time() - 3600
    ses.suppress([{"EmailAddress": p, "Reason": "BOUNCE", "LastUpdateTime": start + n / 10}
                  for n, p in enumerate(people)])
    result = ses_pub.cli(*SYNC)
    assert result.exit_code == 0, result.output
    assert "Fetched 2345 ses suppressions; 2345 subscriber(s)" in result.output
    assert set(_statuses(ses_pub).values()) == {"bounced"}


def test_someone_who_signed_up_again_since_stays(ses_pub: Pub, ses: FakeSes) -> None:
    [person] = add_people(ses_pub.engine, 1)
    suppressed_at = time.time() - 3600
    with ses_pub.engine.begin() as conn:  # their own confirmed sign-up after SES listed them
        conn.execute(update(subscribers).values(
            consented_at=dt.datetime.fromtimestamp(suppressed_at + 60, dt.UTC)))
    ses.suppress(_entries([person], "BOUNCE", suppressed_at))
    assert ses_pub.cli(*SYNC).exit_code == 0
    assert _statuses(ses_pub)[person] == "active"


def test_a_new_ses_send_syncs_first_and_leaves_suppressed_people_out(ses_pub: Pub,
                                                                     ses: FakeSes) -> None:
    people = add_people(ses_pub.engine, 5)
    ses.suppress(_entries(people[:2], "COMPLAINT", time.time() - 60))
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert "suppressions synced: Fetched 2 ses suppressions" in result.output
    assert set(ses.recipients()) == set(people[2:])


def test_a_send_goes_on_when_the_list_cannot_be_read(ses_pub: Pub, ses: FakeSes) -> None:
    people = add_people(ses_pub.engine, 3)
    ses.answer(("aws", 403, "AccessDeniedException", "not authorized to perform: "
                "ses:ListSuppressedDestinations"),
               path="/v2/email/suppression/addresses")
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert "could not sync SES suppressions" in result.output
    assert "AccessDeniedException" in result.output
    assert "SES still drops addresses it suppresses" in " ".join(result.output.split())
    assert set(ses.recipients()) == set(people)


def test_a_confirmed_sign_up_takes_the_address_off_sess_list(ses_pub: Pub, ses: FakeSes,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "ses")
    ses.suppress(_entries(["Back.Again@example.com", "other@example.com"], "BOUNCE",
                          time.time() - 60))
    pub = Publication.load(ses_pub.root)
    assert release_quietly(pub, "Back.Again@example.com") == ["ses_suppressions"]
    assert ses.suppressed() == ["other@example.com"]
    assert release_quietly(pub, "Back.Again@example.com") == []  # not there: nothing to do
    ses.answer(("aws", 500, "InternalFailure", "try later"), times=3,
               path="/v2/email/suppression/addresses/other%40example.com")
    assert release_quietly(pub, "other@example.com") == []  # logged, never raised
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "outbox")  # SES not in use: SES is not asked
    assert release_quietly(Publication.load(ses_pub.root), "other@example.com") == []
    assert ses.suppressed() == ["other@example.com"]
