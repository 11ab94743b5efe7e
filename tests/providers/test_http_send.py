"""`newsletter send` through Postmark and Mailgun against their fakes: the same guarantees as
SendGrid's (tests/providers/test_sendgrid.py, test_faults.py)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from newsletter.core.personalise import Recipient
from newsletter.core.tokens import read_token
from newsletter.db.ledger_tables import send_recipients
from newsletter.providers.mailing import Item
from tests.dispatch.conftest import ROOT, SECRET, SLUG, Pub, add_people
from tests.providers.conftest import Rig

TRICKY = 'Tom & "Jerry" <b>'


def _ledger(pub: Pub) -> dict[str, tuple[str, str | None, str | None]]:
    with pub.engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.email, send_recipients.c.state,
                                   send_recipients.c.last_error,
                                   send_recipients.c.provider_id)).all()
    return {r.email: (r.state, r.last_error, r.provider_id) for r in rows}


def test_send_delivers_once_each(pub: Pub, rig: Rig) -> None:
    people = add_people(pub.engine, 30)
    pub.env[rig.batch_env] = "7"
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    assert f"completed via {rig.name}: 30 of 30 accepted" in result.output
    counts = rig.fake.recipients()
    assert set(counts) == {p.lower() for p in people} and set(counts.values()) == {1}
    assert len(rig.fake.sends()) == 5
    assert all(state == "accepted" and pid for state, _, pid in _ledger(pub).values())


def test_substitutions_headers_and_metadata(pub: Pub, rig: Rig) -> None:
    """Values HTML-escaped in the HTML part, verbatim in the text part and subject; the
    one-click headers, the issue and our send and ledger row travel with each message."""
    from newsletter.audience import add_subscriber

    add_people(pub.engine, 3)
    with pub.engine.begin() as conn:
        add_subscriber(conn, "tom@example.org", name=TRICKY)
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    tom = next(d for d in rig.fake.deliveries if d.email == "tom@example.org")
    assert "Hello Tom," in tom.text and "Hello Tom," in tom.html
    assert "You receive this email as tom@example.org" in tom.text
    assert "%%" not in tom.text + tom.html + tom.subject and "%recipient" not in tom.html
    assert tom.name == TRICKY
    link = tom.headers["List-Unsubscribe"].strip("<>")
    assert read_token(SECRET, "unsubscribe", link.rsplit("/", 1)[1]) == "tom@example.org"
    assert link in tom.text
    assert tom.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    extra = tom.metadata if rig.name == "postmark" else tom.variables
    row = _ledger_ids(pub)["tom@example.org"]
    assert extra == {"nl_issue": SLUG, "nl_send": "1", "nl_recipient": str(row)}
    assert (tom.tag if rig.name == "postmark" else tom.tags) in (SLUG, [SLUG])
    assert _ledger(pub)["tom@example.org"][2] == tom.message_id


def test_a_lost_answer_is_unknown_listed_and_resent_only_on_purpose(pub: Pub, rig: Rig) -> None:
    add_people(pub.engine, 30)
    pub.env[rig.batch_env] = "10"
    pub.env[rig.in_flight_env] = "1"
    rig.fake.answer(200, action="drop")  # the first request is taken but never answered
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 1
    assert "20 of 30 accepted, 0 failed, 10 unknown, 0 pending" in result.output
    lost = [e for e, (state, _, _) in _ledger(pub).items() if state == "unknown"]
    assert len(lost) == 10 and all(rig.fake.recipients()[e] == 1 for e in lost)
    again = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert again.exit_code == 1 and "--resend-unknown" in again.output
    assert len(rig.fake.sends()) == 3  # nothing resent blindly
    accepted = pub.cli("send", SLUG, "--segment", "everyone", "--yes", "--accept-unknown")
    assert accepted.exit_code == 0, accepted.output
    assert set(rig.fake.recipients().values()) == {1} and len(rig.fake.sends()) == 3


@pytest.mark.parametrize("status,body,state", [
    (502, b"<html><body>502 Bad Gateway</body></html>", "unknown"),
    (504, b"upstream timed out", "unknown"),
    (503, b"<html>Service Unavailable</html>", "unknown"),
    (500, None, "accepted"),  # the provider's own error body: not taken, tried again
])
def test_gateway_answers_are_unknown(pub: Pub, rig: Rig, status: int, body, state: str) -> None:
    people = add_people(pub.engine, 5)
    rig.fake.answer(status, body, {"Content-Type": "text/html"} if body else None)
    result = rig.send(pub, SLUG, "--segment", "everyone")
    ledger = _ledger(pub)
    assert {ledger[p][0] for p in people} == {state}
    assert len(rig.fake.sends()) == (1 if state == "unknown" else 2)  # never retried blindly
    assert (result.exit_code == 1) == (state == "unknown"), result.output
    if state == "unknown":
        assert f"gateway answered {status}; the request may have been taken" in result.output


def test_429_waits_for_retry_after(pub: Pub, rig: Rig) -> None:
    add_people(pub.engine, 5)
    rig.fake.answer(429, headers={"Retry-After": "2"})
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    (first, told), (second, when) = rig.fake.sends()
    assert (first, second) == (429, 200)
    assert when - told >= 1.9  # the provider's wait, not the (tiny) test backoff
    assert set(rig.fake.recipients().values()) == {1}


def test_429_honours_x_ratelimit_reset(pub: Pub, rig: Rig) -> None:
    add_people(pub.engine, 5)
    reset = int(time.time()) + 2
    rig.fake.answer(429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    (_, _), (second, when) = rig.fake.sends()
    assert second == 200 and when >= reset - 0.05


def test_endless_5xx_stops_the_send_resumably(pub: Pub, rig: Rig) -> None:
    add_people(pub.engine, 5)
    pub.env["NEWSLETTER_RETRY_ATTEMPTS"] = "3"
    rig.fake.answer(500, times=3)
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 1
    assert "gave up after 3 attempts" in result.output and "Run the same command" in result.output
    assert rig.fake.recipients() == {}
    again = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert again.exit_code == 0, again.output
    assert sum(rig.fake.recipients().values()) == 5


def test_413_splits_the_batch(pub: Pub, rig: Rig) -> None:
    add_people(pub.engine, 40)
    rig.fake.answer(413, b"Payload Too Large", {"Content-Type": "text/plain"})
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    assert [s for s, _ in rig.fake.sends()] == [413, 200, 200]
    assert set(rig.fake.recipients().values()) == {1} and len(rig.fake.recipients()) == 40


@pytest.mark.slow
def test_random_429_and_500_still_deliver_exactly_once(pub: Pub, rig: Rig) -> None:
    people = add_people(pub.engine, 1500)
    pub.env[rig.batch_env] = "50"
    pub.env["NEWSLETTER_RETRY_ATTEMPTS"] = "20"
    rig.fake.fail_randomly({429: 0.25, 500: 0.25}, seed=7)
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    statuses = [s for s, _ in rig.fake.sends()]
    assert statuses.count(429) > 3 and statuses.count(500) > 3
    counts = rig.fake.recipients()
    assert set(counts) == {p.lower() for p in people} and set(counts.values()) == {1}


# -- errors before anything is sent -----------------------------------------------------------
def test_wrong_credentials_are_one_error_before_anything_is_sent(pub: Pub, rig: Rig) -> None:
    add_people(pub.engine, 3)
    key = "POSTMARK_SERVER_TOKEN" if rig.name == "postmark" else "MAILGUN_API_KEY"
    pub.env[key] = "wrong"
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: {rig.name.capitalize()} refused the credentials (401)")
    assert key in last
    assert rig.fake.sends() == []


def test_missing_credentials(pub: Pub, rig: Rig) -> None:
    add_people(pub.engine, 3)
    key = "POSTMARK_SERVER_TOKEN" if rig.name == "postmark" else "MAILGUN_API_KEY"
    pub.env[key] = ""
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {key} is not set")


@pytest.mark.parametrize("flag", [["--at", "2099-01-01T10:00Z"], ["--undo-window", "15m"]])
def test_scheduling_is_refused_clearly(pub: Pub, rig: Rig, flag: list[str]) -> None:
    add_people(pub.engine, 2)
    result = rig.send(pub, SLUG, "--segment", "everyone", *flag)
    assert result.exit_code == 2
    assert f"the {rig.name} transport sends at once" in result.output
    assert ("no scheduled sending" if rig.name == "postmark" else "cannot cancel one send") \
        in " ".join(result.output.split())
    assert rig.fake.sends() == []


@pytest.mark.parametrize("name", ["postmark", "mailgun"])
def test_network_errors_before_the_request_arrives_are_retried_not_unknown(name: str) -> None:
    import socket

    from newsletter.core.settings import Settings
    from newsletter.providers import make_transport

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": f"http://127.0.0.1:{port}",
           "MAILGUN_API_KEY": "k", "MAILGUN_DOMAIN": "mg.example.org",
           "MAILGUN_API_URL": f"http://127.0.0.1:{port}"}
    transport = make_transport(name, Settings.from_env(ROOT, env))
    transport.open(_mailing())
    result = transport.send([Item(1, Recipient("a@example.org"))])
    assert result.stop is None
    assert result.outcomes[0].state == "retry"
    assert "cannot reach" in (result.outcomes[0].error or "")


def _ledger_ids(pub: Pub) -> dict[str, int]:
    with pub.engine.connect() as conn:
        return dict(conn.execute(select(send_recipients.c.email, send_recipients.c.id)).all())


def _mailing():
    from newsletter.providers.mailing import Mailing
    from tests.conftest import sample_build

    publication, build = sample_build(SLUG)
    return Mailing(publication.config, build.slug, build.subject, build.html, build.text,
                   build.content_hash, "7", SECRET)


def test_dry_run_writes_the_request_as_the_provider_gets_it(pub: Pub, rig: Rig) -> None:
    """Postmark's first request is JSON (dry-run.json), Mailgun's form fields (dry-run.txt),
    named so in the output; nothing is sent."""
    import json

    people = add_people(pub.engine, 3)
    result = rig.send(pub, SLUG, "--segment", "everyone", "--dry-run")
    assert result.exit_code == 0, result.output
    suffix = ".json" if rig.name == "postmark" else ".txt"
    sample = pub.root / "dist" / SLUG / f"dry-run{suffix}"
    assert f"dry-run{suffix}" in " ".join(result.output.split())
    assert not (pub.root / "dist" / SLUG / "dry-run.eml").exists()
    text = sample.read_text("utf-8")
    if rig.name == "postmark":
        assert people[0].lower() in json.loads(text)["To"].lower()
    else:
        assert any(line.startswith("to: ") and people[0].lower() in line.lower()
                   for line in text.splitlines())
    assert rig.fake.sends() == []
