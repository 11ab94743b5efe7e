"""The whole promise, model-based: a hypothesis state machine drives random sequences of sends
to segments, `--editions`, `--again`, `--retry-failed`, kills (a crash injected before a random
ledger write: the process dies there, its lease left to a dead pid), resumes, `send cancel`,
unsubscribes, pauses, changes of language and edits of the issue, through the outbox and a real
SMTP server, on SQLite and PostgreSQL. After every step it checks what people hold:

- nobody holds two messages of the issue family unless `--again` asked for it (a message of a
  send that is not --again is its person's first; an --again run mails each person at most once);
- nobody gets a message after they unsubscribed or paused;
- every message of one send is the same message (its frozen artifact: subject kept over edits);
- when no send is under way or stopped, every active, unpaused member of the segments sent to
  holds one, unless the ledger reports them (failed for good, or an unknown outcome).

The commands run in this process (the CLI through click's runner), with the pre-send quality
gate switched off (tests/checks and tests/dispatch/test_gate.py cover it) and small batches.
NEWSLETTER_PROMISE_EXAMPLES and NEWSLETTER_PROMISE_STEPS make a bigger run, e.g.
`NEWSLETTER_PROMISE_EXAMPLES=100 NEWSLETTER_PROMISE_STEPS=40 pytest -s
tests/dispatch/test_promise.py` (it prints the steps run, duplicates and misses).
"""

from __future__ import annotations

import email
import os
import re
import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select, update

from newsletter.cli import main
from newsletter.db import open_database
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import subscribers
from newsletter.dispatch.ledger import process_owner
from newsletter.dispatch.ledger.store import LedgerStore
from newsletter.providers.outbox import OutboxTransport
from newsletter.providers.smtp import SmtpTransport
from tests.conftest import copy_sample
from tests.db_fixtures import fresh_postgres_database
from tests.dispatch.conftest import SLUG, add_people, pub_env

EXAMPLES = int(os.environ.get("NEWSLETTER_PROMISE_EXAMPLES", "3"))
STEPS = int(os.environ.get("NEWSLETTER_PROMISE_STEPS", "10"))
ARABIC = f"{SLUG}-ar"
SLUGS = (SLUG, ARABIC)
SEGMENTS = ("everyone", "cyber", "energy")
#: tags and language of each person (segments.yaml: cyber = tag cyber or tech, energy = tag)
PEOPLE = [(("cyber",), "en"), (("cyber", "energy"), "ar"), (("energy",), None),
          (("cyber",), "en"), ((), "ar"), (("energy",), "en"), (("cyber",), "ar"),
          (("energy", "cyber"), None)]
MESSAGE_ID = re.compile(rb"^Message-ID: <([^.]+(?:-ar)?)\.(\d+)\.(\d+)@", re.M | re.I)


class Crash(BaseException):
    """The process died here (kill -9): nothing after this point of it runs."""


@dataclass
class Delivery:
    step: int
    address: str
    send_id: int
    subject: str


@dataclass
class Tally:
    """Over every example of a run, for the report."""

    steps: int = 0
    crashes: int = 0
    deliveries: int = 0
    duplicates: int = 0
    misses: int = 0
    reported_unknown: int = 0
    rules: Counter = field(default_factory=Counter)


TALLY = Tally()


@contextmanager
def crash_at(write: int) -> Iterator[list[bool]]:
    """Crash before the `write`-th ledger write of this command, and at every one after."""
    original = LedgerStore.write
    count, dead = [0], [False]

    def dying(store: LedgerStore, work: Any, *, patience: float | None = None) -> Any:
        count[0] += 1
        if dead[0] or count[0] >= write:
            dead[0] = True
            raise Crash(f"killed before ledger write {count[0]}")
        return original(store, work, patience=patience)

    LedgerStore.write = dying  # type: ignore[method-assign]
    try:
        yield dead
    finally:
        LedgerStore.write = original  # type: ignore[method-assign]


class World:
    """One example's publication, database, outbox and SMTP mailbox."""

    def __init__(self, base: Path, root: Path, db_url: str, server: Any,
                 monkeypatch: pytest.MonkeyPatch, cleanup: ExitStack):
        self.root = root / "pub"
        shutil.copytree(base, self.root)
        self.env = {**pub_env(db_url, root, monkeypatch), "SMTP_URL": server.url}
        self.outbox = Path(self.env["NEWSLETTER_OUTBOX"])
        self.server = server
        self.engine: Engine = open_database(db_url)
        cleanup.callback(self.engine.dispose)
        self.people = []
        for n, (tags, language) in enumerate(PEOPLE):
            attributes = {"language": language} if language else {}
            self.people += add_people(self.engine, 1, start=n, tags=tags, attributes=attributes)
        dead = subprocess.Popen(["true"])
        dead.wait()
        self.dead_owner = f"{socket.gethostname()}:{dead.pid}"

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(main, ["-C", str(self.root), *args], env=self.env,
                                  catch_exceptions=False)

    def sends(self) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(sends).order_by(sends.c.id)).all()

    def rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(send_recipients.c.send_id, send_recipients.c.id,
                                       send_recipients.c.email, send_recipients.c.state)).all()

    def held(self) -> dict[tuple[str, int, str], str]:
        """Every message anyone holds: (where, send id, key) -> address|subject."""
        found = {}
        for path in self.outbox.glob(f"{SLUG}*/*/*.eml"):
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            found[("outbox", int(path.parent.name), path.name)] = (
                f"{msg['To'].addresses[0].addr_spec}|{msg['Subject']}")
        for n, (_, rcpts, data) in enumerate(self.server.mailbox.messages):
            match = MESSAGE_ID.search(data)
            msg = email.message_from_bytes(data, policy=policy.default)
            found[("smtp", int(match.group(2)), str(n))] = f"{rcpts[0]}|{msg['Subject']}"
        return found

    def smtp_evidence(self) -> set[tuple[int, int]]:
        """(send id, ledger row) of every message the SMTP server took."""
        return {(int(m.group(2)), int(m.group(3))) for _, _, data in
                self.server.mailbox.messages if (m := MESSAGE_ID.search(data))}


class Promise(RuleBasedStateMachine):
    make_world: Any = None  # set by the test: () -> World

    def __init__(self) -> None:
        super().__init__()
        self.world: World = type(self).make_world()
        self.step = 0
        self.seen: set[tuple[str, int, str]] = set()
        self.log: list[Delivery] = []
        self.withdrawn: dict[str, int] = {}  # address -> step it unsubscribed or paused
        self.runs: dict[int, tuple[int, str, bool]] = {}  # send -> (run, segment, editions)
        self.whole_runs: set[int] = set()  # `--editions` runs that were not killed
        self.edits = 0

    # -- helpers -----------------------------------------------------------------------------
    def _command(self, args: list[str], crash: int) -> None:
        flags = [a for a in args if a.startswith("--") and a not in
                 ("--yes", "--transport", "--segment", "--accept-recipient",
                  "--resend-recipient")]
        TALLY.rules["send cancel" if args[1] == "cancel" else " ".join(["send", *flags])] += 1
        before = {s.id for s in self.world.sends()}
        crashed = TALLY.crashes
        if not crash:
            self.world.cli(*args)
        else:
            with crash_at(crash) as dead:
                try:
                    self.world.cli(*args)
                except Crash:
                    pass
            if dead[0]:
                TALLY.crashes += 1
                with self.world.engine.begin() as conn:  # the killed process is gone
                    conn.execute(update(sends).where(sends.c.owner == process_owner())
                                 .values(owner=self.world.dead_owner))
        editions = "--editions" in args
        for send in self.world.sends():
            if send.id not in before:
                self.runs[send.id] = (self.step, send.segment, editions)
        if editions and not (crash and TALLY.crashes > crashed):
            self.whole_runs.add(self.step)  # every edition it meant to send has its send

    def _settle_flags(self, slug: str) -> list[str]:
        """The operator's look at the SMTP server's log for the unknown rows of `slug`'s
        stopped send: accept what it took, resend what it did not."""
        active = [s for s in self.world.sends() if s.issue == slug
                  and s.state in ("sending", "stopped") and s.transport == "smtp"]
        if not active:
            return []
        taken = self.world.smtp_evidence()
        flags = []
        for send_id, key, address, state in self.world.rows():
            if send_id == active[0].id and state == "unknown":
                flags += ["--accept-recipient" if (send_id, key) in taken
                          else "--resend-recipient", address]
        return flags

    # -- rules -------------------------------------------------------------------------------
    @rule(slug=st.sampled_from(SLUGS), segment=st.sampled_from(SEGMENTS),
          transport=st.sampled_from(["outbox", "smtp"]), again=st.booleans(),
          crash=st.integers(0, 12))
    def send(self, slug: str, segment: str, transport: str, again: bool,
             crash: int) -> None:
        args = ["send", slug, "--segment", segment, "--transport", transport, "--yes"]
        self._command(args + (["--again"] if again else []) + self._settle_flags(slug), crash)

    @rule(segment=st.sampled_from(SEGMENTS), transport=st.sampled_from(["outbox", "smtp"]),
          again=st.booleans(), crash=st.integers(0, 12))
    def send_editions(self, segment: str, transport: str, again: bool,
                      crash: int) -> None:
        args = ["send", SLUG, "--segment", segment, "--transport", transport, "--yes",
                "--editions"]
        self._command(args + (["--again"] if again else []), crash)

    def _stopped(self) -> list[Any]:
        return [s for s in self.world.sends() if s.state in ("sending", "stopped")]

    @precondition(lambda self: bool(self._stopped()))
    @rule(which=st.integers(0, 1), crash=st.integers(0, 12))
    def resume(self, which: int, crash: int) -> None:
        """Run the interrupted send's command again (as docs/sending.md says to)."""
        stopped = self._stopped()
        send = stopped[which % len(stopped)]
        args = ["send", send.issue, *(a for name in send.segment.split(" + ")
                                      for a in ("--segment", name)),
                "--transport", send.transport, "--yes"]
        self._command(args + self._settle_flags(send.issue), crash)

    @precondition(lambda self: any(s.state == "completed" and s.failed
                                   for s in self.world.sends()))
    @rule(slug=st.sampled_from(SLUGS), segment=st.sampled_from(SEGMENTS),
          crash=st.integers(0, 8))
    def retry_failed(self, slug: str, segment: str, crash: int) -> None:
        self._command(["send", slug, "--segment", segment, "--transport", "smtp", "--yes",
                       "--retry-failed"], crash)

    @precondition(lambda self: bool(self._stopped()))
    @rule(which=st.integers(0, 1))
    def cancel(self, which: int) -> None:
        stopped = self._stopped()
        self._command(["send", "cancel", stopped[which % len(stopped)].issue, "--yes"], 0)

    @rule(person=st.integers(0, len(PEOPLE) - 1), refuse=st.booleans())
    def smtp_refuses(self, person: int, refuse: bool) -> None:
        """The SMTP server refuses (550) one address, or takes it again."""
        address = self.world.people[person]
        box = self.world.server.mailbox
        box.refuse_rcpt = (box.refuse_rcpt | {address}) if refuse else (
            box.refuse_rcpt - {address})

    def _person(self, person: int, waiting: bool) -> str:
        """Person number `person`; with `waiting`, one still pending in an interrupted send
        when there is one (the case a resume must get right)."""
        stopped = {s.id for s in self._stopped()}
        pending = sorted({address for send_id, _, address, state in self.world.rows()
                          if send_id in stopped and state == "pending"})
        return pending[person % len(pending)] if waiting and pending else \
            self.world.people[person]

    @rule(person=st.integers(0, len(PEOPLE) - 1), waiting=st.booleans(), how=st.booleans())
    def withdraw(self, person: int, waiting: bool, how: bool) -> None:
        """The person unsubscribes (`how`) or pauses for four weeks."""
        from newsletter.audience.preferences import pause_until, save_preferences
        from newsletter.db.engine import write_connection

        address = self._person(person, waiting)
        if how:
            self.world.cli("subscribers", "unsubscribe", address)
        else:
            with write_connection(self.world.engine) as conn, conn.begin():
                save_preferences(conn, address, topics=(), chosen=(), pause=pause_until(4))
        self.withdrawn.setdefault(address, self.step)

    @rule(person=st.integers(0, len(PEOPLE) - 1), language=st.sampled_from(["en", "ar"]),
          slug=st.sampled_from(SLUGS), edit=st.booleans())
    def change(self, person: int, language: str, slug: str, edit: bool) -> None:
        """A reader changes their language, or the editor edits an issue's subject."""
        if edit:
            self.edit_issue(slug)
            return
        address = self.world.people[person]
        with self.world.engine.begin() as conn:
            attributes = conn.execute(select(subscribers.c.attributes)
                                      .where(subscribers.c.email == address)).scalar_one()
            conn.execute(update(subscribers).where(subscribers.c.email == address)
                         .values(attributes={**attributes, "language": language}))

    def edit_issue(self, slug: str) -> None:
        self.edits += 1
        manifest = self.world.root / "issues" / slug / "issue.yaml"
        text = manifest.read_text(encoding="utf-8")
        manifest.write_text(re.sub(r'(?m)^subject: "(.*)"$',
                                   lambda m: f'subject: "{m.group(1)} (edit {self.edits})"',
                                   text, count=1), encoding="utf-8")

    # -- what people hold -------------------------------------------------------------------
    @invariant()
    def the_promise(self) -> None:
        self.people_hold_what_they_may()
        self.finished_sends_reached_everyone()

    def people_hold_what_they_may(self) -> None:
        self.step += 1
        TALLY.steps += 1
        held = self.world.held()
        for key in sorted(set(held) - self.seen, key=lambda k: (k[1], k[2])):
            address, subject = held[key].split("|", 1)
            self.log.append(Delivery(self.step, address, key[1], subject))
            TALLY.deliveries += 1
        self.seen = set(held)
        policy_of = {s.id: s.reach for s in self.world.sends()}
        first: dict[str, int] = {}
        per_run: Counter = Counter()
        subjects: dict[int, set[str]] = {}
        for n, d in enumerate(self.log):
            subjects.setdefault(d.send_id, set()).add(d.subject)
            run = self.runs.get(d.send_id, (d.send_id, "", False))[0]
            first.setdefault(d.address, n)
            if policy_of.get(d.send_id) == "again":
                per_run[(d.address, run)] += 1
                if per_run[(d.address, run)] > 1:
                    TALLY.duplicates += 1
                    raise AssertionError(f"{d.address} got two messages of one --again run")
            elif first[d.address] != n:
                TALLY.duplicates += 1
                raise AssertionError(f"{d.address} got a second message (send #{d.send_id}) "
                                     f"without --again: {self.log}")
            if d.address in self.withdrawn and d.step > self.withdrawn[d.address]:
                raise AssertionError(f"{d.address} was mailed (send #{d.send_id}) after "
                                     "withdrawing consent")
        for send_id, found in subjects.items():
            assert len(found) == 1, f"send #{send_id} sent two messages: {found}"

    def finished_sends_reached_everyone(self) -> None:
        all_sends = self.world.sends()
        if any(s.state in ("sending", "stopped") for s in all_sends):
            return
        state = {s.id: s.state for s in all_sends}
        covered: set[str] = set()
        editions: dict[int, list[int]] = {}
        for send_id, (run, segment, by_editions) in self.runs.items():
            if by_editions:
                editions.setdefault(run, []).append(send_id)
            elif state.get(send_id) == "completed":
                covered.update(segment.split(" + "))
        for run, members in editions.items():
            if run in self.whole_runs and all(state.get(s) == "completed" for s in members):
                covered.update(self.runs[members[0]][1].split(" + "))
        if not covered:
            return
        holders = {d.address for d in self.log}
        reported = {address for _, _, address, st_ in self.world.rows()
                    if st_ in ("failed", "unknown")}
        from newsletter.audience.segments import Segments
        from newsletter.compose.publication import Publication

        segments = Segments.load(Publication.load(self.world.root))
        with self.world.engine.connect() as conn:
            for name in covered:
                members = set(conn.execute(select(subscribers.c.email)
                                           .where(segments.condition(name))).scalars())
                missing = members - holders - reported
                if missing:
                    TALLY.misses += len(missing)
                    raise AssertionError(f"segment {name} was sent to, but {sorted(missing)} "
                                         "hold nothing and the ledger does not say why")
                TALLY.reported_unknown += len((members - holders) & reported)


@pytest.fixture()
def worlds(db_url: str, tmp_path: Path, smtp_server, request: pytest.FixtureRequest,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory of fresh worlds (publication, database, outbox, SMTP mailbox), one per
    example; each closes the one before."""
    server = smtp_server("plain")
    monkeypatch.setattr("newsletter.checks.require_passing", lambda pub, build: None)
    monkeypatch.setattr(OutboxTransport, "batch_size", 3)
    monkeypatch.setattr(SmtpTransport, "batch_size", 3)
    monkeypatch.setenv("NEWSLETTER_HEARTBEAT", "3600")
    count = [0]
    stack = ExitStack()
    base = copy_sample(tmp_path / "base")  # its build caches are warmed once, then copied
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication

    for slug in SLUGS:
        build_issue(Publication.load(base), slug)

    def make_world() -> World:
        count[0] += 1
        stack.close()
        server.mailbox.messages.clear()
        server.mailbox.refuse_rcpt = set()
        root = tmp_path / f"example{count[0]}"
        if db_url.startswith("sqlite"):
            url = f"sqlite:///{root / 'db' / 'newsletter.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database(
                request.getfixturevalue("postgres_server")))
        world = World(base, root, url, server, monkeypatch, stack)
        shutil.rmtree(tmp_path / f"example{count[0] - 1}", ignore_errors=True)
        return world

    make_world.count = count  # type: ignore[attr-defined]
    yield make_world
    stack.close()


#: step scripts of the paths issue 22 found broken, run through the same machine
SCRIPTS = {
    "withdraw between a kill and the resume": [
        ("send", dict(slug=SLUG, segment="everyone", transport="outbox", again=False, crash=3)),
        ("withdraw", dict(person=0, waiting=True, how=True)),
        ("withdraw", dict(person=1, waiting=True, how=False)),
        ("resume", dict(which=0, crash=0))],
    "edit between a kill and the resume": [
        ("send", dict(slug=SLUG, segment="cyber", transport="smtp", again=False, crash=4)),
        ("change", dict(person=0, language="en", slug=SLUG, edit=True)),
        ("resume", dict(which=0, crash=0))],
    "kill, cancel, then --editions": [
        ("send", dict(slug=SLUG, segment="everyone", transport="outbox", again=False, crash=3)),
        ("cancel", dict(which=0)),
        ("send_editions", dict(segment="everyone", transport="outbox", again=False, crash=0))],
    "editions, then a plain send of each edition": [
        ("send_editions", dict(segment="cyber", transport="smtp", again=False, crash=0)),
        ("send", dict(slug=SLUG, segment="everyone", transport="outbox", again=False, crash=0)),
        ("send", dict(slug=ARABIC, segment="energy", transport="smtp", again=False, crash=0))],
    "a refused reader, another edition, then --retry-failed": [
        ("smtp_refuses", dict(person=1, refuse=True)),
        ("send", dict(slug=ARABIC, segment="cyber", transport="smtp", again=False, crash=0)),
        ("smtp_refuses", dict(person=1, refuse=False)),
        ("change", dict(person=1, language="en", slug=SLUG, edit=False)),
        ("send", dict(slug=SLUG, segment="everyone", transport="smtp", again=True, crash=0)),
        ("retry_failed", dict(slug=ARABIC, segment="cyber", crash=0))],
}


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.slow
def test_the_promise_on_the_paths_issue_22_found_broken(worlds: Any, script: str) -> None:
    Promise.make_world = staticmethod(worlds)
    machine = Promise()
    machine.the_promise()
    for name, arguments in SCRIPTS[script]:
        getattr(machine, name)(**arguments)
        machine.the_promise()
    assert machine.log, "the script mailed nobody"


@pytest.mark.slow
def test_the_promise_holds_whatever_happens(worlds: Any, db_url: str) -> None:
    global TALLY
    TALLY = Tally()  # this database's figures
    Promise.make_world = staticmethod(worlds)
    run_state_machine_as_test(Promise, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
        suppress_health_check=list(HealthCheck)))
    print(f"\npromise ({db_url.split(':')[0]}): {worlds.count[0]} examples, {TALLY.steps} "
          f"steps, {TALLY.crashes} crashes, {TALLY.deliveries} messages, duplicates "
          f"{TALLY.duplicates}, misses {TALLY.misses}, people the ledger reports unknown or "
          f"failed {TALLY.reported_unknown}; commands {dict(TALLY.rules)}")
    assert TALLY.duplicates == TALLY.misses == 0
