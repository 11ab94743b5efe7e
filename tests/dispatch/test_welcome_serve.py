"""The welcome through a real `newsletter serve`, on each database: the confirmation page
answers while the welcome is still in flight; kill -9 during the welcome send, then a new
start, and each person holds exactly one welcome (the outbox, whose files tell what was
written) or at most one (SMTP: a message in flight when the process died has an unknown fate,
is counted as delivered and never sent twice); two servers on one database confirming the same
sign-ups at once welcome each person once."""

from __future__ import annotations

import email
import re
import signal
import threading
import time
from email import policy
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from newsletter.core.tokens import Keys
from newsletter.db.ledger_tables import sends
from newsletter.events import optin
from tests.dispatch.conftest import SECRET, Pub, Serve, kill_when
from tests.dispatch.test_welcome import confirm, welcomes, with_welcome

# every test here starts, kills and restarts real `newsletter serve` processes
pytestmark = pytest.mark.slow


def wait_for(what: str, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def confirmation_link(outbox: Path, address: str) -> str:
    """The confirmation link mailed to `address` (the outbox's confirmation message)."""
    for path in sorted(outbox.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if address in msg["To"] and "Confirm" in msg["Subject"]:
            text = msg.get_body(("plain",)).get_content()
            return re.search(r"https?://\S+/confirm/\S+", text).group(0)
    raise AssertionError(f"no confirmation for {address}")


def sign_up(serve: Serve, address: str) -> str:
    """The sign-up form as a browser sends it; the link its confirmation mail carries."""
    with httpx.Client(base_url=serve.base) as client:
        page = client.get("/subscribe")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = client.post("/subscribe", data={"email": address, "csrf": token})
        assert answer.status_code == 200, answer.text
    wait_for("the confirmation mail", lambda: _has_link(serve.pub.outbox, address))
    return confirmation_link(serve.pub.outbox, address)


def _has_link(outbox: Path, address: str) -> bool:
    try:
        confirmation_link(outbox, address)
    except AssertionError:
        return False
    return True


def welcome_sends(pub: Pub) -> list[tuple[str, int, int, int]]:
    with pub.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(sends.c.state, sends.c.accepted, sends.c.unknown, sends.c.total)
            .where(sends.c.issue.like("\\_welcome%", escape="\\")).order_by(sends.c.id))]


def test_the_page_answers_while_the_welcome_is_in_flight_and_kill_9_never_sends_twice(
        pub: Pub, smtp_server) -> None:
    server = smtp_server("plain")
    server.mailbox.gate_at = 1  # the first welcome's DATA waits here until the gate opens
    with_welcome(pub, "{transport: smtp, every: 1s}")
    serve = Serve(pub).__enter__()
    try:
        link = sign_up(serve, "ann@example.com")
        answer = httpx.post(serve._path(link), timeout=30)
        assert answer.status_code == 200 and "ann@example.com" in answer.text
        assert server.mailbox.at_gate.wait(120), "the welcome was never handed over"
        # the welcome is in flight, held by the server: the public side answers all the same
        other = sign_up(serve, "bob@example.com")
        assert httpx.post(serve._path(other), timeout=30).status_code == 200
        assert not server.mailbox.messages
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.communicate(timeout=30)
        pub.settle()
    finally:
        if serve.proc.poll() is None:
            serve.__exit__()
    server.mailbox.gate.set()  # (aiosmtpd drops the message of a connection that died)
    [(state, _, unknown, _)] = welcome_sends(pub)
    assert (state, unknown) == ("sending", 1)  # the ledger says: in flight when it died
    delivered = lambda: sorted(rcpts[0] for _, rcpts, _ in server.mailbox.messages)  # noqa: E731
    with Serve(pub):
        wait_for("the welcome of the other sign-up",
                 lambda: "bob@example.com" in delivered()
                 and welcome_sends(pub)[0][0] == "cancelled")
    # Ann's fate is unknown (a real server may have queued it): she is never sent another
    assert delivered() in (["bob@example.com"], ["ann@example.com", "bob@example.com"])
    first, second = welcome_sends(pub)
    assert first[0] == "cancelled" and first[2] >= 1  # counted as delivered, never resent
    assert second[0] == "completed"
    status = pub.cli("status", "_welcome").output
    assert "counted as delivered: a welcome is never sent twice" in status


def test_kill_9_during_a_welcome_send_then_exactly_one_each(pub: Pub) -> None:
    with_welcome(pub, "{every: 1s}")
    people = [f"reader{n:03d}@example.com" for n in range(150)]
    for address in people:
        assert confirm(pub, address) == optin.Confirmation.CONFIRMED
    first = Serve(pub)  # sends the welcome as it starts: killed once 20 are written
    files = lambda: len(list(pub.outbox.glob("_welcome/*/*.eml")))  # noqa: E731
    killed = kill_when(pub, first.proc, lambda: files() >= 20)
    if killed:
        assert files() < 150 or welcome_sends(pub)[0][0] != "completed"
    # while no server runs: the last two people unsubscribe and are erased
    optin.unsubscribe_address(pub.engine, people[-1])
    assert pub.cli("subscribers", "forget", people[-2], "--yes").exit_code == 0
    got_before = welcomes(pub)
    gone = [p for p in people[-2:] if p not in got_before]  # (unless welcomed before the kill)
    with Serve(pub):
        wait_for("every welcome", lambda: files() == 150 - len(gone))
    got = welcomes(pub)
    assert sorted(got) == sorted(set(people) - set(gone))
    assert all(len(found) == 1 for found in got.values())
    assert not list(pub.outbox.glob("_welcome/*/.*"))  # no half-written files
    assert {state for state, *_ in welcome_sends(pub)} == {"completed"}


def test_two_servers_confirming_the_same_sign_ups_welcome_each_once(pub: Pub) -> None:
    with_welcome(pub, "{every: 1s}")
    people = [f"reader{n:02d}@example.com" for n in range(12)]
    keys = Keys.of([SECRET])
    links = []
    for address in people:
        optin.request_signup(pub.engine, address, "", [])
        token = keys.sign(optin.CONFIRM_PURPOSE, address, ttl=optin.CONFIRM_TTL_S,
                          stamped=True)
        links.append(f"confirm/{token}")
    with Serve(pub) as one, Serve(pub) as two:
        for link in links:  # the same link at both servers at once
            start = threading.Barrier(2)
            answers: list[int] = []

            def click(serve: Serve, link: str = link, start=start, answers=answers) -> None:
                start.wait()
                answers.append(httpx.post(f"{serve.base}/{link}", timeout=60).status_code)

            threads = [threading.Thread(target=click, args=(s,)) for s in (one, two)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert answers == [200, 200]
        wait_for("every welcome", lambda: sorted(welcomes(pub)) == people)
    # both servers have stopped: nothing more can be sent
    got = welcomes(pub)
    assert all(len(found) == 1 for found in got.values()), {a: len(f) for a, f in got.items()}
