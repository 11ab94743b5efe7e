"""The welcome message, in one process on each database: a confirmed sign-up (the page, or
`subscribers add --welcome`) is welcomed once, ever, through the ledger; an import never is; a
replayed confirmation link, an unsubscribe or an erasure before (or during) the welcome send
do what a person expects; the message carries the latest issue as configured, in the reader's
language; `status` and `report` cover it. Real processes (serve, kill -9, two servers) are in
test_welcome_serve.py."""

from __future__ import annotations

import email
import re
import threading
import warnings
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.compose.publication import Publication
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import welcome_requests
from newsletter.dispatch.welcome import welcome_round
from newsletter.events import optin
from tests.dispatch.conftest import SECRET, SLUG, Pub, add_people


def with_welcome(pub: Pub, settings: str = "{latest: link}") -> Publication:
    with open(pub.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write(f"welcome: {settings}\n")
    return Publication.load(pub.root)


def welcomes(pub: Pub) -> dict[str, list[email.message.EmailMessage]]:
    """address -> the welcome messages (any edition) in the outbox."""
    found: dict[str, list] = {}
    for path in sorted(pub.outbox.glob("_welcome*/*/*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        address = re.search(r"<?([^<>\s]+@[^<>\s]+)>?$", msg["To"]).group(1)
        found.setdefault(address, []).append(msg)
    return found


def confirm(pub: Pub, address: str, name: str = "") -> optin.Confirmation:
    """A sign-up request and its confirmation, as the page makes them."""
    import time

    optin.request_signup(pub.engine, address, name, [], limits=optin.Limits(address_gap_s=0))
    return optin.confirm_signup(pub.engine, address, int(time.time() * 1000) + 1,
                                secrets=[SECRET], welcome=True)


def _client(root: Path):
    from newsletter.web.public import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    app = create_app(Publication.load(root), prune=False, bounces=False, sending=False)
    return TestClient(app, follow_redirects=False)


def test_a_sign_up_confirmed_on_the_page_is_welcomed_once_ever(pub: Pub) -> None:
    publication = with_welcome(pub)
    with _client(pub.root) as client:
        page = client.get("/subscribe")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert client.post("/subscribe", data={"email": "ann@example.com", "name": "Ann",
                                               "csrf": token}).status_code == 200
        [mail] = list(pub.outbox.rglob("*.eml"))
        text = email.message_from_bytes(mail.read_bytes(), policy=policy.default).get_body(
            ("plain",)).get_content()
        link = re.search(r"https?://\S+/confirm/\S+", text).group(0)
        path = "/" + link.split("/", 3)[3]
        assert "Welcome" not in client.post(path).text  # the page does not send it
        assert welcomes(pub) == {}
        done = welcome_round(publication)
        assert [(s.issue, s.segment, s.accepted) for s in done.sends] == [
            ("_welcome", "welcome", 1)]
        [msg] = welcomes(pub)["ann@example.com"]
        assert msg["Subject"] == "Welcome to Policy Experts Weekly"
        assert "Hello Ann," in msg.get_body(("plain",)).get_content()
        # the link replayed: "already confirmed", nothing asked, nothing sent
        replay = client.post(path)
        assert replay.status_code == 200 and "already" in replay.text.lower()
    assert welcome_round(publication).sends == []
    # unsubscribed, signed up again, confirmed: a subscriber again, but welcomed once ever
    optin.unsubscribe_address(pub.engine, "ann@example.com")
    assert confirm(pub, "ann@example.com") == optin.Confirmation.CONFIRMED
    assert welcome_round(publication).sends == []
    assert len(welcomes(pub)["ann@example.com"]) == 1


def test_an_import_never_welcomes_and_add_welcome_does_once(pub: Pub) -> None:
    with_welcome(pub)
    csv = pub.root / "people.csv"
    csv.write_text("email,name\nbea@example.com,Bea\ncid@example.com,Cid\n", encoding="utf-8")
    assert pub.cli("subscribers", "import", str(csv)).exit_code == 0
    added = pub.cli("subscribers", "add", "dee@example.com", "--name", "Dee", "--welcome")
    assert added.exit_code == 0, added.output
    assert "welcome send #1 of _welcome: 1 of 1 accepted" in added.output
    again = pub.cli("subscribers", "add", "dee@example.com", "--welcome")
    assert again.exit_code == 0 and "nobody waiting" in again.output
    staff = pub.cli("subscribers", "add", "bea@example.com", "--welcome")  # imported, then
    assert "welcome send #2" in staff.output  # confirmed by staff: welcomed now, once
    assert sorted(welcomes(pub)) == ["bea@example.com", "dee@example.com"]
    assert all(len(found) == 1 for found in welcomes(pub).values())
    status = pub.cli("status", "_welcome")
    assert status.exit_code == 0 and "-> welcome via outbox: completed" in status.output
    report = pub.cli("report", "_welcome")
    assert report.exit_code == 0 and "2 people reached in 2 sends" in report.output


def test_no_welcome_configured_is_one_clear_error(pub: Pub) -> None:
    result = pub.cli("subscribers", "add", "eve@example.com", "--welcome")
    assert result.exit_code == 2 and "there is no welcome: in newsletter.yaml" in result.output
    with pub.engine.connect() as conn:  # refused before anything changed
        assert conn.execute(select(welcome_requests)).all() == []
    refused = pub.cli("send", "_welcome", "--segment", "everyone", "--yes")
    assert refused.exit_code == 2 and "is a message, not an issue" in refused.output


def test_unsubscribed_or_erased_before_or_during_the_welcome_send(pub: Pub) -> None:
    publication = with_welcome(pub)
    for address in ("fay@example.com", "gus@example.com", "hal@example.com"):
        assert confirm(pub, address) == optin.Confirmation.CONFIRMED
    stop = threading.Event()
    stop.set()  # the send is made (its snapshot) but stops before its first batch
    [stopped] = welcome_round(publication, stop=stop).sends
    assert (stopped.state, stopped.total, stopped.accepted) == ("stopped", 3, 0)
    optin.unsubscribe_address(pub.engine, "fay@example.com")
    assert pub.cli("subscribers", "forget", "gus@example.com", "--yes").exit_code == 0
    assert confirm(pub, "ivy@example.com") == optin.Confirmation.CONFIRMED
    done = welcome_round(publication)  # resumes the stopped send, then welcomes Ivy
    assert [(s.id, s.state, s.accepted, s.skipped) for s in done.sends] == [
        (stopped.id, "completed", 1, 2), (stopped.id + 1, "completed", 1, 0)]
    assert sorted(welcomes(pub)) == ["hal@example.com", "ivy@example.com"]
    with pub.engine.connect() as conn:
        reasons = sorted(conn.execute(select(send_recipients.c.last_error).where(
            send_recipients.c.state == "skipped")).scalars())
    assert reasons == ["no longer a subscriber (erased)", "unsubscribed since the send started"]
    # erased before any send: the request went with the subscriber row
    assert confirm(pub, "jon@example.com") == optin.Confirmation.CONFIRMED
    assert pub.cli("subscribers", "forget", "jon@example.com", "--yes").exit_code == 0
    assert welcome_round(publication).sends == []
    with pub.engine.connect() as conn:
        assert len(conn.execute(select(welcome_requests)).all()) == 3  # hal, ivy, fay


@pytest.mark.slow  # SpamAssassin scores several new messages
def test_the_latest_issue_linked_or_whole_in_the_reader_s_language(pub: Pub) -> None:
    add_people(pub.engine, 2)
    assert pub.cli("send", SLUG, "--segment", "everyone", "--yes").exit_code == 0
    publication = with_welcome(pub, "{latest: whole, within_days: 2}")
    confirm(pub, "kim@example.com", "Kim")
    assert pub.cli("subscribers", "add", "lea@example.com", "--attr", "language=ar").exit_code \
        == 0
    confirm(pub, "lea@example.com")
    done = welcome_round(publication)
    assert sorted(s.issue for s in done.sends) == ["_welcome", "_welcome-ar"]
    english = welcomes(pub)["kim@example.com"][0].get_body(("html",)).get_content()
    arabic = welcomes(pub)["lea@example.com"][0]
    assert arabic["Subject"] == "أهلًا بك في خبراء السياسات أسبوعيًا"
    for title in ("Grid queues", "ransomware", "tariff"):  # the issue's pieces follow
        assert title.lower() in english.lower()
    assert f"https://news.example.org/archive/{SLUG}/" in english
    assert "Our latest issue," in english
    html = arabic.get_body(("html",)).get_content()
    assert 'lang="ar"' in html and "يلي أدناه أحدث أعدادنا" in html
    assert 'lang="en"' in html  # the English pieces keep their language in the Arabic welcome
    confirm(pub, "ned@example.com")  # the latest issue is still the issue, not a welcome
    assert [s.issue for s in welcome_round(publication).sends] == ["_welcome"]
    later = welcomes(pub)["ned@example.com"][0].get_body(("html",)).get_content()
    assert f"https://news.example.org/archive/{SLUG}/" in later


def test_a_welcome_that_fails_its_checks_is_not_sent(pub: Pub) -> None:
    publication = with_welcome(pub)
    manifest = pub.root / "issues" / "_welcome" / "issue.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        "Thank you for confirming", "TK Thank you for confirming"), encoding="utf-8")
    confirm(pub, "max@example.com")
    from newsletter.core.errors import FailedError

    with pytest.raises(FailedError, match="leftover"):
        welcome_round(publication)
    with pub.engine.connect() as conn:
        assert conn.execute(select(sends)).all() == []
