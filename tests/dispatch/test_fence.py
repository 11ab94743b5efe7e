"""The lease fence does not serialise a run's writers, and still keeps a takeover whole
(issue 31: each write used to lock the send's row first and do its work under that lock).

PostgreSQL only: there, writes of one run (SendGrid's workers) run side by side; SQLite lets
one writer at a time into the whole database anyway. A write is held in the middle of its
transaction, in a thread of its own, while the test acts; the other writers give up after a
few seconds (their patience), where before issue 31 they waited for the held one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, event, select, text, true

from newsletter.db import open_database
from newsletter.db.ledger_tables import send_recipients
from newsletter.dispatch.ledger import LeaseLost, Ledger
from newsletter.dispatch.ledger.store import WritePolicy
from tests.dispatch.conftest import SLUG, add_people, artifact

pytestmark = pytest.mark.postgres
PATIENT = WritePolicy(patience=5)  # a writer that waits longer than this gives up


@pytest.fixture()
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = open_database(postgres_url)
    yield engine
    engine.dispose()


class Held:
    """Runs `write` in a thread of its own and holds it, its transaction open, right after
    its first statement that starts with `after` (an UPDATE of the recipient rows: its work
    done; of the send's row: its fence passed), until `finish()`."""

    def __init__(self, engine: Engine, write: Callable[[], object], after: str):
        self.there, self.go, self.done = threading.Event(), threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.engine = engine

        def hold(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
            if (threading.current_thread() is self.thread and not self.there.is_set()
                    and statement.startswith(after)):
                self.there.set()
                assert self.go.wait(60)

        self.hold = hold
        event.listen(engine, "after_cursor_execute", hold)

        def run() -> None:
            try:
                write()
            except BaseException as exc:  # noqa: BLE001 - looked at by the test
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.there.wait(30)

    def finish(self) -> BaseException | None:
        self.go.set()
        self.thread.join(60)
        event.remove(self.engine, "after_cursor_execute", self.hold)
        assert self.done.is_set()
        return self.error


def _states(engine: Engine, keys: list[int]) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(send_recipients.c.state).where(
            send_recipients.c.id.in_(keys))).scalars())


def _started(ledger: Ledger) -> tuple[int, list, list]:
    add_people(ledger.engine, 40)
    send = ledger.sends.create(issue=SLUG, segment="everyone", transport="outbox",
                               artifact=artifact(), members=true())
    first, second = list(ledger.recipients.stream(send.id, ["pending"], 20))
    return send.id, first, second


def test_a_write_of_the_run_does_not_wait_for_another_still_at_work(engine: Engine) -> None:
    ledger = Ledger(engine, PATIENT)
    send_id, first, second = _started(ledger)
    one = ledger.recipients.hand_over(send_id, first, check=None, whole=True)
    outcomes = [(item.key, "accepted", None, None) for item in first]
    held = Held(engine, lambda: ledger.recipients.record(send_id, outcomes, one.batch),
                after="UPDATE send_recipients")
    # While the first write holds its recipient rows, another batch is handed over and its
    # outcomes recorded: neither waits for it.
    two = ledger.recipients.hand_over(send_id, second, check=None, whole=True)
    ledger.recipients.record(send_id, [(i.key, "failed", None, "550") for i in second],
                             two.batch)
    assert not held.done.is_set()
    assert held.finish() is None
    assert _states(engine, [i.key for i in first]) == {"accepted"}
    assert _states(engine, [i.key for i in second]) == {"failed"}
    send = ledger.sends.get(send_id)
    assert (send.accepted, send.failed, send.unknown, send.batches) == (20, 20, 0, 2)


def test_a_takeover_before_the_fence_leaves_the_write_undone(engine: Engine) -> None:
    ledger = Ledger(engine)
    send_id, first, _ = _started(ledger)
    one = ledger.recipients.hand_over(send_id, first, check=None, whole=True)
    outcomes = [(item.key, "accepted", None, None) for item in first]
    held = Held(engine, lambda: ledger.recipients.record(send_id, outcomes, one.batch),
                after="UPDATE send_recipients")
    other = Ledger(engine, PATIENT)
    assert other.sends.acquire(send_id) == 2  # does not wait: the write has no lock on it yet
    assert isinstance(held.finish(), LeaseLost)
    assert _states(engine, [i.key for i in first]) == {"unknown"}  # nothing it did is kept
    assert other.sends.get(send_id).accepted == 0


def test_a_takeover_waits_for_a_write_past_its_fence(engine: Engine) -> None:
    ledger = Ledger(engine)
    send_id, first, _ = _started(ledger)
    one = ledger.recipients.hand_over(send_id, first, check=None, whole=True)
    outcomes = [(item.key, "accepted", None, None) for item in first]
    held = Held(engine, lambda: ledger.recipients.record(send_id, outcomes, one.batch),
                after="UPDATE sends")
    other = Ledger(engine)
    tokens: list[int] = []
    taking = threading.Thread(target=lambda: tokens.append(other.sends.acquire(send_id)),
                              name="takeover")
    taking.start()
    deadline = time.monotonic() + 30
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    while True:  # the takeover waits for the write's row lock on the send
        with engine.connect() as conn:
            if conn.execute(query).scalar_one():
                break
        assert time.monotonic() < deadline, "the takeover never waited for the write"
        time.sleep(0.01)
    assert not tokens
    assert held.finish() is None  # the write commits whole...
    taking.join(30)
    assert tokens == [2]  # ...and the takeover comes after it, seeing what it wrote
    assert _states(engine, [i.key for i in first]) == {"accepted"}
    assert other.sends.get(send_id).accepted == 20
