"""Subject tests end to end against the fake SendGrid, on each database: each subject to an
equal random share of the sample, clicks from people and from link scanners posted to the
signed Event Webhook, the decision by people's clicks, the winner to the rest; one issue
family throughout (nobody gets two subjects); an unsubscribe between the test and the rest;
`send cancel` stopping the rest; a plain send refused while a test is open; `serve` finishing a
due test. Kills at each stage and two runs at once: test_subject_tests_kill.py."""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from collections import Counter

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from newsletter.compose.publication import Publication
from newsletter.db.tables import subject_test_people, subject_tests
from newsletter.events import optin
from newsletter.providers.sendgrid.signature import public_key_text, sign
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_sendgrid import FakeSendGrid

A = "Grid queues and ransomware: four experts on the week"
B = "What policymakers get wrong this week, in four pieces"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"
SCANNER = "Proofpoint URL Defense/1.0"
TEST = ["send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes",
        "--test-subjects", A, "--test-subjects", B, "--sample", "50%", "--decide-after", "2h"]


def subjects_received(sendgrid: FakeSendGrid) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for delivery in sendgrid.deliveries:
        found.setdefault(delivery.email.lower(), []).append(delivery.subject)
    return found


def the_test(pub: Pub):
    with pub.engine.connect() as conn:
        return conn.execute(select(subject_tests)).one()


def arms(pub: Pub) -> dict[str, int]:
    """address -> the subject (0, 1) the sample gave it."""
    from newsletter.db.tables import subscribers

    with pub.engine.connect() as conn:
        return dict(conn.execute(select(subscribers.c.email_key, subject_test_people.c.arm)
                                 .join(subscribers, subscribers.c.id ==
                                       subject_test_people.c.subscriber_id)).all())


def decision_due(pub: Pub) -> None:
    """The wait is over (the clock moved): the decision is due now."""
    with pub.engine.begin() as conn:
        conn.execute(update(subject_tests).values(
            decide_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))


class Webhook:
    """SendGrid's signed Event Webhook, posted to the public app of `pub`."""

    def __init__(self, pub: Pub, monkeypatch: pytest.MonkeyPatch):
        self.key = ec.generate_private_key(ec.SECP256R1())
        monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", public_key_text(self.key))
        self.pub, self.count = pub, 0

    def post(self, events: list[dict]) -> None:
        from newsletter.web.public import create_app

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient
        body = json.dumps(events).encode()
        stamp = str(int(time.time()))
        app = create_app(Publication.load(self.pub.root), prune=False, bounces=False,
                         sending=False)
        with TestClient(app) as client:
            answer = client.post("/webhooks/sendgrid", content=body, headers={
                "X-Twilio-Email-Event-Webhook-Signature": sign(self.key, stamp, body),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                "Content-Type": "application/json"})
        assert answer.status_code in (200, 204), answer.text

    def event(self, kind: str, address: str, send: str, at: int, **extra) -> dict:
        self.count += 1
        return {"email": address, "event": kind, "sg_event_id": f"ev-{self.count}",
                "timestamp": at, "nl_issue": SLUG, "nl_send": send, **extra}


def clicks(sendgrid: FakeSendGrid, webhook: Webhook, people: dict[str, int],
           scanners: dict[str, int]) -> None:
    """Delivery events for every message of the test's subjects, then per subject: clicks by
    `people[subject]` readers in a browser two minutes later, and by `scanners[subject]` other
    readers' link scanners (a scanner's agent): more scanned clicks on A, more human ones on
    B."""
    now = int(time.time())
    events, taken = [], Counter()
    by_subject: dict[str, list] = {}
    for delivery in sendgrid.deliveries:
        by_subject.setdefault(delivery.subject, []).append(delivery)
    for subject, found in by_subject.items():
        if subject not in (A, B):
            continue
        for delivery in found:
            send = delivery.custom_args["nl_send"]
            events.append(webhook.event("delivered", delivery.email, send, now - 300))
        index = (A, B).index(subject)
        for delivery in found:
            send = delivery.custom_args["nl_send"]
            if taken[("human", index)] < people[index]:
                taken[("human", index)] += 1
                events.append(webhook.event("click", delivery.email, send, now - 120,
                                            url="https://example.org/donors",
                                            useragent=BROWSER))
            elif taken[("scanner", index)] < scanners[index]:
                taken[("scanner", index)] += 1
                events.append(webhook.event("click", delivery.email, send, now - 120,
                                            url="https://example.org/donors",
                                            useragent=SCANNER))
    webhook.post(events)


@pytest.mark.slow  # several sends through the fake SendGrid
def test_a_subject_test_judged_by_people_not_scanners(pub: Pub, sendgrid: FakeSendGrid,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    people = add_people(pub.engine, 400)
    pub.env["NEWSLETTER_SENDGRID_BATCH"] = "50"
    started = pub.cli(*TEST)
    assert started.exit_code == 0, started.output
    assert "subject test 1: every subject has gone; the decision is due at" in started.output
    drawn = arms(pub)
    assert Counter(drawn.values()) == {0: 100, 1: 100}  # 50% of 400, in equal shares
    got = subjects_received(sendgrid)
    assert {a: [(A, B)[arm]] for a, arm in drawn.items()} == got  # one subject each
    # too early: nothing decided, nothing more sent
    early = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert early.exit_code == 0 and "the decision is due at" in early.output
    assert len(sendgrid.deliveries) == 200
    webhook = Webhook(pub, monkeypatch)
    # A: 12 people and 60 scanners click; B: 30 people and 2 scanners
    clicks(sendgrid, webhook, people={0: 12, 1: 30}, scanners={0: 60, 1: 2})
    # between the test and the rest: one of the rest unsubscribes, one in the sample too
    rest = [p for p in people if p not in drawn]
    optin.unsubscribe_address(pub.engine, rest[0])
    optin.unsubscribe_address(pub.engine, next(iter(drawn)))
    decision_due(pub)
    finished = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert finished.exit_code == 0, finished.output
    assert "subject test 1 decided: B won: A 12.0% of 100 (12 people clicked); B 30.0% of " \
           "100 (30 people clicked)" in finished.output
    assert f'the rest got "{B}"' in finished.output
    got = subjects_received(sendgrid)
    assert rest[0] not in got  # unsubscribed before the rest went
    assert {a: s for a, s in got.items() if a not in drawn} == {a: [B] for a in rest[1:]}
    assert all(len(s) == 1 for s in got.values())  # nobody got two subjects
    test = the_test(pub)
    assert (test.state, test.winner) == ("done", 1)
    assert [(f["people"], f["machine"], f["reached"]) for f in test.figures] == [
        (12, 60, 100), (30, 2, 100)]
    status = pub.cli("status", SLUG).output
    assert f"  B (winner): {B}: 30 of 100 people (30.0%), 2 machines only" in status
    report = pub.cli("report", SLUG, "--format", "json")
    [shown] = json.loads(report.stdout)["subject_tests"]
    assert [(s["label"], s["people"], s["winner"]) for s in shown["subjects"]] == [
        ("A", 12, False), ("B", 30, True)]
    page = (pub.root / "dist" / SLUG / "report.html").read_text(encoding="utf-8")
    assert "Subject test 1" in page and "B (winner)" in page
    # the test is done: a later send of the issue leaves out everyone it reached
    again = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert "nothing to send" in again.output or "no active subscribers" in again.output


def test_no_clear_winner_sends_the_first_subject(pub: Pub, sendgrid: FakeSendGrid,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    add_people(pub.engine, 200)
    assert pub.cli(*TEST).exit_code == 0
    clicks(sendgrid, Webhook(pub, monkeypatch), people={0: 5, 1: 7}, scanners={0: 0, 1: 40})
    decision_due(pub)
    finished = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert "no clear winner: A 10.0% of 50" in finished.output
    got, drawn = subjects_received(sendgrid), arms(pub)
    assert {tuple(s) for a, s in got.items() if a not in drawn} == {(A,)}
    assert len(got) == 200 and all(len(s) == 1 for s in got.values())


def test_send_cancel_stops_the_rest_and_a_plain_send_waits(pub: Pub,
                                                           sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 100)
    assert pub.cli(*TEST).exit_code == 0
    plain = pub.cli("send", SLUG, "--segment", "press", "--yes")
    assert plain.exit_code == 1 and "subject test 1 of 2026-11-24 to 'everyone' is open " \
                                    "(waiting for its decision" in plain.output
    other = pub.cli(*TEST[:-4], "--test-subjects", "Another subject for this week's issue")
    assert other.exit_code == 2 and "tests other subjects" in other.output
    cancelled = pub.cli("send", "cancel", SLUG, "--yes")
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled subject test 1 of 2026-11-24" in cancelled.output
    decision_due(pub)
    assert the_test(pub).state == "cancelled"
    after = pub.cli("send", SLUG, "--segment", "everyone", "--yes")  # a plain send now
    assert after.exit_code == 0, after.output
    got = subjects_received(sendgrid)
    drawn = arms(pub)
    assert all(s == ["Grid queues, ransomware, Egypt's squeeze & the tariff trap"]
               for a, s in got.items() if a not in drawn)  # the issue's own subject
    assert all(len(s) == 1 for s in got.values())


@pytest.mark.slow  # four plans refused, each after the checks
def test_refused_before_anything_is_sent(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 10)
    opens = pub.cli(*TEST[:3], "--yes", "--test-subjects", A, "--test-subjects", B, "--by",
                    "opens")
    assert opens.exit_code == 2 and "--by opens needs a provider that tells machine opens" \
                                    in opens.output
    small = pub.cli(*TEST[:-4], "--sample", "10%")
    assert small.exit_code == 2 and "the sample is too small: 10% of 10 recipients" \
                                    in small.output
    same = pub.cli(*TEST[:7], "--test-subjects", A, "--test-subjects", A.upper().lower())
    assert same.exit_code == 1 and "is the same as test subject A" in same.output
    leftover = pub.cli(*TEST[:7], "--test-subjects", A, "--test-subjects", "TK a subject line")
    assert leftover.exit_code == 1 and "leftover placeholder TK" in leftover.output
    with pub.engine.connect() as conn:
        assert conn.execute(select(subject_tests)).all() == []
    assert sendgrid.deliveries == []


def test_serve_finishes_a_due_test(pub: Pub, sendgrid: FakeSendGrid) -> None:
    add_people(pub.engine, 60)
    assert pub.cli(*TEST).exit_code == 0
    with open(pub.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("subject_tests: {finish_in_serve: true, every: 1s}\n")
    decision_due(pub)
    from newsletter.web.public import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    app = create_app(Publication.load(pub.root), prune=False, bounces=False)
    with TestClient(app):
        deadline = time.monotonic() + 120
        while the_test(pub).state != "done":
            assert time.monotonic() < deadline, "serve did not finish the test"
            time.sleep(0.05)
    got = subjects_received(sendgrid)
    assert len(got) == 60 and all(len(s) == 1 for s in got.values())
    assert {s[0] for a, s in got.items() if a not in arms(pub)} == {A}  # no clicks: the first


def test_an_arm_another_run_finished_meanwhile_is_passed_over(pub: Pub, sendgrid: FakeSendGrid,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Two runs at once: this run read subject A's send as under way, and the other run
    finished it before this one planned its resume. This run goes on to the next step (it
    used to plan the send anew and refuse its label as an unknown segment)."""
    import dataclasses

    from newsletter.dispatch.subjects import run

    add_people(pub.engine, 100)
    assert pub.cli(*TEST).exit_code == 0  # both subjects sent: the test waits
    with pub.engine.begin() as conn:  # as the other run saw it, before its last arm finished
        conn.execute(update(subject_tests).values(state="testing", decide_at=None))
    real, stale = run._sends_of, []

    def read_before_the_other_run_finished(carry, label_):
        found = real(carry, label_)
        if found is not None and label_.endswith(": A)") and not stale:
            stale.append(label_)
            return dataclasses.replace(found, state="sending")
        return found

    monkeypatch.setattr(run, "_sends_of", read_before_the_other_run_finished)
    sent = len(sendgrid.recipients())
    again = pub.cli("send", SLUG, "--segment", "everyone", "--transport", "sendgrid", "--yes")
    assert stale, "the stale read was not made"
    assert again.exit_code == 0, again.output
    assert "the decision is due at" in again.output
    assert len(sendgrid.recipients()) == sent  # nobody mailed again
    assert the_test(pub).state == "waiting"


def _first_look_made_earlier(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """This run's first look for an open test finds none (it was made before the other run
    started its test); later looks see the database. Returns the looks made stale."""
    from newsletter.cli import subject_tests as cli_tests

    real, looked = cli_tests.open_test, []

    def before_the_other_run_started(pub_, issue):
        if not looked:
            looked.append(issue)
            return None
        return real(pub_, issue)

    monkeypatch.setattr(cli_tests, "open_test", before_the_other_run_started)
    return looked


@pytest.mark.parametrize("where", ["plan", "start"])
def test_a_test_another_run_started_meanwhile_is_carried_on(pub: Pub, sendgrid: FakeSendGrid,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            where: str) -> None:
    """Two runs at once: this run found no open test, and the other run started the same
    test before this one's plan checked for an open test (`plan`), or before this one stored
    its own (`start`: the unique index). Either way this run carries the other's test on (it
    used to refuse at the plan, naming that test, and failed the two-runs kill test now and
    then)."""
    from newsletter.dispatch.subjects import run, store

    add_people(pub.engine, 100)
    assert pub.cli(*TEST).exit_code == 0  # the other run: both subjects sent, the test waits
    sent = len(sendgrid.recipients())
    looked = _first_look_made_earlier(monkeypatch)
    if where == "start":  # this run's plan, too, was made before the other's test existed
        monkeypatch.setattr("newsletter.dispatch.plan.refuse_beside_test", lambda *a: None)
    created = []
    real_create = store.create
    monkeypatch.setattr(run.store, "create",
                        lambda *a, **k: created.append(1) or real_create(*a, **k))
    again = pub.cli(*TEST)
    assert looked, "the stale look was not made"
    assert again.exit_code == 0, again.output
    assert "with these subjects just now; carrying it on" in again.output
    assert created == ([1] if where == "start" else [])
    assert "the decision is due at" in again.output
    assert len(sendgrid.recipients()) == sent  # nobody mailed again
    with pub.engine.connect() as conn:
        assert len(conn.execute(select(subject_tests)).all()) == 1


def test_a_different_test_started_meanwhile_is_refused(pub: Pub, sendgrid: FakeSendGrid,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The other run started a test of other subjects: this run refuses, naming it, and
    sends nothing."""
    add_people(pub.engine, 100)
    assert pub.cli(*TEST).exit_code == 0
    sent = len(sendgrid.recipients())
    looked = _first_look_made_earlier(monkeypatch)
    other = [arg if arg != B else "A third subject for the same week" for arg in TEST]
    again = pub.cli(*other)
    assert looked, "the stale look was not made"
    assert again.exit_code != 0
    assert "subject test 1 of" in again.output and "is open" in again.output, again.output
    assert "carrying it on" not in again.output
    assert len(sendgrid.recipients()) == sent
