"""SendGrid request bodies built in a child process: the same bytes as in the sending process,
the builder's errors raised as if built there, and a child that dies, is interrupted or
outlives a killed sender (real processes, no database)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from newsletter.core.personalise import Recipient
from newsletter.events.tracking import LinkUrls
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.sendgrid import bodies as bodies_module
from newsletter.providers.sendgrid.bodies import START_AT_BATCH, Bodies
from newsletter.providers.sendgrid.payload import PayloadBuilder
from newsletter.providers.sendgrid.transport import SendGridTransport
from tests.conftest import ROOT, sample_build
from tests.dispatch.conftest import SECRET, SLUG
from tests.fake_sendgrid import API_KEY, FakeSendGrid

READY_WITHIN = 60.0  # seconds a spawned child may take to import, on a loaded machine


#: the send's click tracking, which crosses to the child with the mailing
TRACKED = LinkUrls(urls={1: "https://example.org/report"}, public_url="https://news.example.org/",
                   secret=SECRET, send_id=7)


def _mailing(**changes) -> Mailing:
    publication, build = sample_build(SLUG)
    return Mailing(publication.config, build.slug, build.subject,
                   build.html + "<p>%%attr.city|nowhere%% %%link|1%%</p>", build.text,
                   build.content_hash, "7", SECRET, categories=["weekly"], **changes)


def _batch(number: int, size: int = 40) -> list[Item]:
    return [Item(number * 1000 + n, Recipient(f"r{number}-{n}@example.org", f"Reader {n}",
                                              {"city": "Zürich & <Bern>"} if n % 3 else {}))
            for n in range(size)]


def started(mailing: Mailing) -> Bodies:
    """Bodies whose child is running and ready (its first batches built)."""
    bodies = Bodies(mailing)
    for number in range(START_AT_BATCH):
        bodies.request(_batch(number))
    assert bodies.child is not None, "the child starts with the second batch"
    assert bodies.child.is_ready(READY_WITHIN)
    return bodies


@pytest.fixture(scope="module")
def shared():
    """One child for the tests that leave it running (a spawn takes a while)."""
    bodies = started(_mailing(link_url=TRACKED))
    yield bodies
    bodies.close()


@pytest.fixture
def bodies():
    bodies = started(_mailing(link_url=TRACKED))
    yield bodies
    bodies.close()


def test_one_batch_starts_no_child() -> None:
    bodies = Bodies(_mailing())
    bodies.request(_batch(0))
    assert bodies.child is None
    bodies.close()


def test_a_dry_runs_check_starts_no_child() -> None:
    """A dry run checks every batch of a large send (`Transport.check`) with the builder here:
    no child is started for bodies nobody sends, and what the builder refuses is reported."""
    transport = SendGridTransport(API_KEY, "http://127.0.0.1:9")
    transport.open(_mailing())
    try:
        crowded = _batch(0, 3)
        crowded[1] = Item(crowded[1].key, Recipient(crowded[1].recipient.email, "Reader",
                                                    {"city": "v" * 20_000}))
        for number in range(START_AT_BATCH + 2):
            refused = transport.check(_batch(number + 1))
            assert refused == {}
        assert set(transport.check(crowded)) == {crowded[1].key}  # SendGrid's size limit
        assert transport.bodies.child is None and transport.bodies.built == 0
    finally:
        transport.close()


def test_the_child_builds_the_same_bytes(shared: Bodies) -> None:
    reference = PayloadBuilder(shared.mailing)
    for number in range(3, 6):
        batch = _batch(number)
        assert shared.request(batch) == reference.request(batch)
    assert shared.child is not None and not shared.given_up
    assert shared.child.process.poll() is None


def test_a_send_through_the_child_reaches_sendgrid_once_each() -> None:
    """The real transport and client against the fake SendGrid (which checks each request by
    SendGrid's rules and renders every personalization): batches built in the child arrive
    whole, each address once, personalised as if built here."""
    fake = FakeSendGrid().start()
    transport = SendGridTransport(API_KEY, fake.url)
    try:
        transport.open(_mailing(link_url=TRACKED))
        batches = [_batch(n, 25) for n in range(6)]
        for batch in batches[:START_AT_BATCH]:
            assert {o.state for o in transport.send(batch).outcomes} == {"accepted"}
        assert transport.bodies.child is not None
        assert transport.bodies.child.is_ready(READY_WITHIN)
        for batch in batches[START_AT_BATCH:]:
            assert {o.state for o in transport.send(batch).outcomes} == {"accepted"}
        assert not transport.bodies.given_up
        process = transport.bodies.child.process
    finally:
        transport.close()
        fake.stop()
    everyone = [item.recipient.email for batch in batches for item in batch]
    assert fake.recipients() == Counter(everyone)
    assert process.returncode == 0  # ended with the transport
    late = next(d for d in fake.deliveries if d.email == "r5-1@example.org")  # by the child
    assert "Zürich &amp; &lt;Bern&gt; https://news.example.org/c/" in late.html  # escaped
    assert late.name == "Reader 1"


def test_a_builder_error_is_raised_here_and_the_child_goes_on(shared: Bodies) -> None:
    twice = [Item(1, Recipient("a@example.org")), Item(2, Recipient("A@example.org"))]
    with pytest.raises(ValueError, match="twice in one request"):
        shared.request(twice)
    batch = _batch(7)
    assert shared.request(batch) == PayloadBuilder(shared.mailing).request(batch)
    assert not shared.given_up


def test_a_child_that_dies_is_replaced_by_building_here(bodies: Bodies) -> None:
    assert bodies.child is not None
    process = bodies.child.process
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    batch = _batch(8)
    assert bodies.request(batch) == PayloadBuilder(bodies.mailing).request(batch)
    assert bodies.given_up and bodies.child is None
    assert bodies.request(_batch(9))[1] == {}  # and so on, here


def test_a_stuck_child_is_given_up_on(bodies: Bodies, monkeypatch) -> None:
    """A child that does not answer (stopped here; swapping, in life) holds up no send."""
    assert bodies.child is not None
    process = bodies.child.process
    monkeypatch.setattr(bodies_module, "ANSWER_WITHIN", 0.5)
    os.kill(process.pid, signal.SIGSTOP)
    batch = _batch(11)
    assert bodies.request(batch) == PayloadBuilder(bodies.mailing).request(batch)
    assert bodies.given_up and bodies.child is None
    assert process.returncode == -signal.SIGKILL


def test_ctrl_c_does_not_stop_the_child(shared: Bodies) -> None:
    """The terminal's Ctrl-C reaches the whole process group; the send ends its run after
    the batches in flight, so the child must still build them."""
    assert shared.child is not None
    os.kill(shared.child.process.pid, signal.SIGINT)
    batch = _batch(10)
    assert shared.request(batch) == PayloadBuilder(shared.mailing).request(batch)
    assert not shared.given_up and shared.child.process.poll() is None


def test_a_mailing_that_does_not_pickle_is_built_here() -> None:
    bodies = Bodies(_mailing(link_url=lambda recipient, position: "https://example.org/x"))
    batches = [_batch(n) for n in range(START_AT_BATCH + 1)]
    reference = PayloadBuilder(bodies.mailing)
    assert [bodies.request(b) for b in batches] == [reference.request(b) for b in batches]
    assert bodies.given_up and bodies.child is None
    bodies.close()


def test_close_ends_the_child(bodies: Bodies) -> None:
    assert bodies.child is not None
    process = bodies.child.process
    bodies.close()
    assert process.returncode == 0


def test_a_send_that_ends_while_the_child_starts_ends_it() -> None:
    """Two batches, and the send is over before the child has read the mailing, or just
    after: closing ends it either way, and waits for no one."""
    bodies = Bodies(_mailing(link_url=TRACKED))
    for number in range(START_AT_BATCH):
        bodies.request(_batch(number))
    assert bodies.child is not None
    process = bodies.child.process
    bodies.close()
    assert process.returncode is not None and bodies.child is None


SENDER = textwrap.dedent("""
    import sys
    from tests.providers.test_sendgrid_bodies import TRACKED, _mailing, started
    bodies = started(_mailing(link_url=TRACKED))
    print(bodies.child.process.pid, flush=True)
    sys.stdin.read()  # until killed
""")


@pytest.mark.slow
def test_the_child_exits_when_the_sender_is_killed() -> None:
    """kill -9 of the sending process leaves no child behind: its pipe closes."""
    sender = subprocess.Popen([sys.executable, "-c", SENDER], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert sender.stdout is not None
        child = int(sender.stdout.readline())
        exited = os.pidfd_open(child)
    finally:
        sender.kill()
        sender.wait()
    try:
        readable, _, _ = select.select([exited], [], [], READY_WITHIN)
        assert readable, f"the child {child} outlived the killed sender"
    finally:
        os.close(exited)
