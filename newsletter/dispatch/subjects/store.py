"""Subject tests in the database: the test row, its sample, and the steps of its life.

A test is made in one transaction with its sample: people drawn at random from those the send
would reach, split into equal shares, one per subject (`subject_test_people`). While a test is
open (testing, waiting, finishing) the unique partial index `uq_subject_tests_open_issue`
allows no other on its issue, and `refuse_beside_test()` lets no send of the issue start but
the test's own: one send per subject (its *arms*) and the winner's to the rest. Each step is
one conditional update (`testing` -> `waiting` -> `finishing` -> `done`), so of two processes
taking the same step exactly one does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.core.words import letter as label
from newsletter.db.tables import (
    subject_test_label,
    subject_test_people,
    subject_tests,
    subscribers,
)
from newsletter.dispatch.ledger.store import LedgerStore, SendBusy, utcnow

OPEN = ("testing", "waiting", "finishing")
MAX_SUBJECTS = 26  # labelled A to Z


@dataclass(frozen=True)
class SubjectTest:
    """One subject test, as the database has it."""

    id: int
    issue: str
    segment: str
    transport: str
    subjects: tuple[str, ...]
    sample: int  # per cent
    measure: str  # clicks or opens
    decide_after: dt.timedelta
    level: float
    send_at: dt.datetime | None
    undo_window: dt.timedelta | None
    state: str
    created_at: dt.datetime
    decide_at: dt.datetime | None
    decided_at: dt.datetime | None
    winner: int | None
    figures: list[dict[str, Any]] | None
    note: str | None
    last_error: str | None

    @classmethod
    def of(cls, row: Any) -> SubjectTest:
        values = dict(row._mapping)
        values["subjects"] = tuple(values["subjects"])
        values["decide_after"] = dt.timedelta(seconds=values["decide_after"])
        window = values["undo_window"]
        values["undo_window"] = dt.timedelta(seconds=window) if window is not None else None
        return cls(**values)

    @property
    def open(self) -> bool:
        return self.state in OPEN

    def arm_label(self, arm: int) -> str:
        """The ledger's segment label of the send of subject `arm`."""
        return subject_test_label(self.segment, self.id, label(arm))

    @property
    def rest_label(self) -> str:
        """The ledger's segment label of the winner's send to the rest of the segment."""
        return subject_test_label(self.segment, self.id, "rest")

    def labels(self) -> list[str]:
        return [self.arm_label(arm) for arm in range(len(self.subjects))] + [self.rest_label]

    def chosen(self) -> str:
        """The subject the rest gets: the winner (the first when no clear winner)."""
        return self.subjects[self.winner or 0]


def _one(conn: Connection, query: Any) -> SubjectTest | None:
    row = conn.execute(query).first()
    return SubjectTest.of(row) if row else None


def find_open(engine: Engine, issue: str) -> SubjectTest | None:
    """The open test of `issue` (at most one: the unique index)."""
    with engine.connect() as conn:
        return _one(conn, select(subject_tests).where(subject_tests.c.issue == issue,
                                                      subject_tests.c.state.in_(OPEN)))


def get(engine: Engine, test_id: int) -> SubjectTest:
    with engine.connect() as conn:
        found = _one(conn, select(subject_tests).where(subject_tests.c.id == test_id))
    assert found is not None, f"no subject test {test_id}"
    return found


def of_issue(engine: Engine, issues: Sequence[str]) -> list[SubjectTest]:
    """Every test of the `issues` (slugs), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(subject_tests).where(subject_tests.c.issue.in_(list(issues)))
                            .order_by(subject_tests.c.id)).all()
    return [SubjectTest.of(row) for row in rows]


def busy_message(test: SubjectTest) -> str:
    """One line naming the open test that keeps another send of its issue from starting."""
    segments = test.segment.replace(" + ", " --segment ")
    when = {"testing": "its subjects are being sent",
            "waiting": "waiting for its decision"
                       + (f" at {test.decide_at:%Y-%m-%d %H:%M} UTC" if test.decide_at else ""),
            "finishing": "sending the winner to the rest"}[test.state]
    return (f"subject test {test.id} of {test.issue} to '{test.segment}' is open ({when}); "
            f"`newsletter send {test.issue} --segment {segments}` carries it on, `newsletter "
            f"send cancel {test.issue}` stops it")


def refuse_beside_test(engine: Engine, issue: str, label: str) -> None:
    """While a test of `issue` is open, refuse (SendBusy) any send but its own."""
    test = find_open(engine, issue)
    if test is not None and label not in test.labels():
        raise SendBusy(busy_message(test))


def arm_members(test_id: int, arm: int) -> Any:
    """WHERE clause over subscribers: the people of the test's sample who get subject `arm`."""
    people = subject_test_people.c
    return subscribers.c.id.in_(select(people.subscriber_id).where(
        people.test_id == test_id, people.arm == arm))


def create(store: LedgerStore, *, issue: str, segment: str, transport: str,
           subjects: Sequence[str], sample: int, measure: str, decide_after: dt.timedelta,
           level: float, send_at: dt.datetime | None, undo_window: dt.timedelta | None,
           members: Any) -> SubjectTest:
    """The test and its sample, in one transaction: `sample` per cent of the people matching
    `members` (a WHERE clause over subscribers: who the send would reach now, or a function
    making one from the transaction's connection), drawn at random and dealt into equal
    shares, one per subject. Raises SendBusy when another test of the issue is open, and
    ValueError when the sample leaves a subject nobody."""
    arms = len(subjects)

    def work(conn: Connection) -> int:
        where = members(conn) if callable(members) else members
        total = conn.execute(select(func.count()).select_from(subscribers)
                             .where(where)).scalar_one()
        share = total * sample // 100 // arms
        if share < 1:
            raise ValueError(f"{sample}% of {total:,} recipients leaves fewer than one person "
                             f"for each of {arms} subjects")
        test_id = conn.execute(insert(subject_tests).values(
            issue=issue, segment=segment, transport=transport, subjects=list(subjects),
            sample=sample, measure=measure, decide_after=int(decide_after.total_seconds()),
            level=level, send_at=send_at,
            undo_window=int(undo_window.total_seconds()) if undo_window else None,
            state="testing", created_at=utcnow()).returning(subject_tests.c.id)).scalar_one()
        drawn = select(subscribers.c.id.label("person"), func.row_number().over(
            order_by=func.random()).label("n")).where(where).subquery()
        conn.execute(insert(subject_test_people).from_select(
            ["test_id", "subscriber_id", "arm"],
            select(literal(test_id, subject_tests.c.id.type), drawn.c.person,
                   (drawn.c.n - 1) % arms).where(drawn.c.n <= share * arms)))
        return test_id

    try:
        test_id = store.write(work)
    except IntegrityError:
        other = find_open(store.engine, issue)
        raise SendBusy(busy_message(other) if other else
                       f"another subject test of {issue} was being made; run the command "
                       "again") from None
    return get(store.engine, test_id)


def _move(store: LedgerStore, test_id: int, before: str, **values: Any) -> bool:
    """One step of the test: True when this call took it (the test was in `before`)."""
    return bool(store.write(lambda conn: conn.execute(update(subject_tests).where(
        subject_tests.c.id == test_id, subject_tests.c.state == before).values(**values)
    ).rowcount))


def all_sent(store: LedgerStore, test_id: int, decide_at: dt.datetime) -> bool:
    """Every subject has gone: wait for the decision until `decide_at`."""
    return _move(store, test_id, "testing", state="waiting", decide_at=decide_at)


def decided(store: LedgerStore, test_id: int, winner: int, figures: list[dict[str, Any]],
            note: str) -> bool:
    """Store the decision with its figures and note; the winner goes to the rest next."""
    return _move(store, test_id, "waiting", state="finishing", winner=winner, figures=figures,
                 note=note, decided_at=utcnow())


def finished(store: LedgerStore, test_id: int) -> bool:
    return _move(store, test_id, "finishing", state="done")


def cancel(store: LedgerStore, test_id: int, reason: str) -> bool:
    """Give the test up (`send cancel`): the rest is never sent."""
    return bool(store.write(lambda conn: conn.execute(update(subject_tests).where(
        subject_tests.c.id == test_id, subject_tests.c.state.in_(OPEN)).values(
        state="cancelled", last_error=reason)).rowcount))
