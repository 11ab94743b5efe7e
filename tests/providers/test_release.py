"""A person on Postmark's or Mailgun's suppression list who signs up again and confirms is taken
off it (`capabilities.releases`), so the next send reaches them: the whole story against each
fake, through the public app's confirmation and real `newsletter send`s, on SQLite and
PostgreSQL; a provider that cannot be asked during the release does not cost the confirmation;
Postmark keeps a SpamComplaint (it cannot be reactivated), and says so."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from newsletter.compose.publication import Publication
from newsletter.events.suppressions import release_quietly
from tests.dispatch.conftest import SLUG, Pub, add_people, ledger_states
from tests.fake_http import FakeApi
from tests.providers.conftest import Rig
from tests.web.public.conftest import Site, confirm_link, make_client, post_form

BACK = "back.again@example.com"
YEAR_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
#: each provider's suppression API, the routes a release uses (for answering 500 there)
RELEASE_ROUTES = {"postmark": ("POST", r"/message-streams/([^/]+)/suppressions/delete"),
                  "mailgun": ("DELETE", r"/v3/([^/]+)/(bounces|complaints|unsubscribes)/(.+)")}
LIST_ROUTES = {"postmark": ("GET", r"/message-streams/([^/]+)/suppressions/dump"),
               "mailgun": ("GET", r"/v3/([^/]+)/(bounces|complaints|unsubscribes)")}


def suppress(rig: Rig, email: str, reason: str = "bounce") -> None:
    """`email` on the fake's list, since a year ago."""
    if rig.name == "postmark":
        postmark_reason = {"bounce": "HardBounce", "complaint": "SpamComplaint",
                           "unsubscribe": "ManualSuppression"}[reason]
        rig.fake.suppressions.append({  # type: ignore[attr-defined]
            "EmailAddress": email, "SuppressionReason": postmark_reason, "Origin": "Recipient",
            "CreatedAt": YEAR_AGO.strftime("%Y-%m-%dT%H:%M:%S.1234567-05:00")})
    else:
        name = {"bounce": "bounces", "complaint": "complaints",
                "unsubscribe": "unsubscribes"}[reason]
        rig.fake.lists[name].append({  # type: ignore[attr-defined]
            "address": email, "created_at": YEAR_AGO.strftime("%a, %d %b %Y %H:%M:%S UTC")})


def listed(rig: Rig, email: str) -> bool:
    """Whether the fake still keeps `email` suppressed."""
    if rig.name == "postmark":
        return rig.fake.suppressed(email)  # type: ignore[attr-defined]
    return any(row["address"].lower() == email.lower()
               for rows in rig.fake.lists.values() for row in rows)  # type: ignore[attr-defined]


def broken(fake: FakeApi, route: tuple[str, str], message: str) -> None:
    """Answer 500 on `route` until `mended`."""
    fake.route(route[0], route[1], lambda fake, request: fake.error(500, message))


def mended(fake: FakeApi) -> None:
    fake.routes.pop(0)


def sign_up_and_confirm(site: Site, email: str) -> int:
    """The subscribe form, then the confirmation link posted as the person does; the status
    code of the confirmation."""
    with make_client(site) as client:
        assert post_form(client, {"email": email}).status_code == 200
        link = confirm_link(site.messages()[-1])
        return client.post("/" + link.split("/", 3)[3]).status_code


def test_the_whole_story_suppressed_failed_confirmed_released_reached_once(
        pub: Pub, site: Site, rig: Rig) -> None:
    readers = add_people(pub.engine, 2)
    site.add(BACK)  # imported, no consent
    suppress(rig, BACK)
    # a send whose sync could not read the list hands the address over: Postmark refuses it
    # (406, failed), Mailgun takes it and drops it
    broken(rig.fake, LIST_ROUTES[rig.name], "lists are down")
    first = rig.send(pub, SLUG, "--segment", "everyone")
    mended(rig.fake)
    assert first.exit_code == 0, first.output
    assert rig.fake.recipients()[BACK] == 0
    if rig.name == "postmark":
        assert ledger_states(pub)[BACK] == ["failed"]
    else:
        assert rig.fake.dropped == [(BACK, "suppress-bounce")]  # type: ignore[attr-defined]
    assert pub.cli("suppressions", "sync", "--provider", rig.name).exit_code == 0
    assert site.status(BACK) == "bounced"

    assert sign_up_and_confirm(site, BACK) == 200
    assert site.status(BACK) == "active"
    assert not listed(rig, BACK)

    again = "--retry-failed" if rig.name == "postmark" else "--again"
    second = rig.send(pub, SLUG, "--segment", "everyone", again)
    assert second.exit_code == 0, second.output
    assert rig.fake.recipients()[BACK] == 1
    assert site.status(BACK) == "active"  # the sync before the send kept the consent
    if rig.name == "mailgun":
        assert rig.fake.dropped == [(BACK, "suppress-bounce")]  # nothing dropped since
    assert all(rig.fake.recipients()[r.lower()] >= 1 for r in readers)


def test_a_provider_that_cannot_release_does_not_cost_the_confirmation(
        pub: Pub, site: Site, rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    site.add(BACK, "bounced")
    suppress(rig, BACK)
    broken(rig.fake, RELEASE_ROUTES[rig.name], "suppressions are down")
    with caplog.at_level(logging.WARNING, logger="newsletter.events"):
        assert sign_up_and_confirm(site, BACK) == 200
    assert site.status(BACK) == "active"  # the consent is kept
    assert listed(rig, BACK)  # ...though the provider still lists the address
    label = {"postmark": "Postmark", "mailgun": "Mailgun"}[rig.name]
    assert f"could not remove a confirmed address from {label}'s suppressions" in caplog.text
    assert BACK not in caplog.text  # no address in the logs
    mended(rig.fake)
    assert release_quietly(Publication.load(pub.root), BACK) != []
    assert not listed(rig, BACK)


@pytest.mark.parametrize("reason", ["bounce", "complaint", "unsubscribe"])
def test_release_names_the_lists_it_took_the_address_off(pub: Pub, rig: Rig,
                                                         reason: str) -> None:
    suppress(rig, "Other@example.com")
    suppress(rig, "Back.Again@Example.com", reason)
    publication = Publication.load(pub.root)
    released = release_quietly(publication, BACK)
    if rig.name == "mailgun":
        assert released == [{"bounce": "bounces", "complaint": "complaints",
                             "unsubscribe": "unsubscribes"}[reason]]
    elif reason == "complaint":  # Postmark does not reactivate a spam complaint
        assert released == []
    else:
        assert released == ["stream broadcast"]
    assert listed(rig, BACK) == (rig.name == "postmark" and reason == "complaint")
    assert listed(rig, "other@example.com")
    assert release_quietly(publication, "nobody@example.com") == []  # not listed: nothing


def test_postmark_keeps_a_spam_complaint_and_says_so(pub: Pub, site: Site, postmark,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig("postmark", postmark, "", "")
    site.add(BACK, "complained")
    suppress(rig, BACK, "complaint")
    with caplog.at_level(logging.WARNING, logger="newsletter.events"):
        assert sign_up_and_confirm(site, BACK) == 200
    assert site.status(BACK) == "active"
    assert listed(rig, BACK)
    assert "Postmark keeps a confirmed address suppressed in the stream 'broadcast' " \
           "(SpamComplaint)" in caplog.text
    deletes = [r for r in postmark.requests if r[1].endswith("/suppressions/delete")]
    assert deletes and all(status == 200 for _, _, status, _ in deletes)
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    assert ledger_states(pub)[BACK] == ["failed"]  # Postmark still answers 406 for them


def test_no_credentials_no_release(pub: Pub, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("POSTMARK_SERVER_TOKEN", "MAILGUN_API_KEY", "SENDGRID_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    assert release_quietly(Publication.load(pub.root), BACK) == []


def test_an_address_with_unusual_characters_is_released_too(pub: Pub, rig: Rig) -> None:
    odd = "a|b+c%d@example.com"
    suppress(rig, odd)
    assert release_quietly(Publication.load(pub.root), odd) != []
    assert not listed(rig, odd)
