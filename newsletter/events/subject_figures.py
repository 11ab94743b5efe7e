"""What a subject test is judged by: per send of the test, the people who clicked (or opened)
by a given time, people only (the verdicts of newsletter.events.classify and
newsletter.events.verdicts: link scanners, clicks too soon after delivery, bursts over every
link and image proxies are machines), and beside them those whose only clicks were machines'.

dispatch.subjects.run is handed `people_who_acted` as its `measure` (dispatch and events do
not import each other); the report (`tests_of`) shows each test with its stored decision, or
for a test not decided yet, the figures so far.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, distinct, false, func, or_, select

from newsletter.core.words import letter
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import subject_test_label, subject_tests, webhook_events

EVENT = {"clicks": "click", "opens": "open"}


def acted(conn: Connection, send_id: int, until: dt.datetime | None, measure: str
          ) -> tuple[int, int]:
    """(people judged human who clicked or opened send `send_id` by `until`, people whose
    only clicks or opens by then were a machine's)."""
    w = webhook_events.c
    counted = [w.send_id == send_id, w.event == EVENT[measure]]
    if until is not None:
        counted.append(or_(w.occurred_at <= until, w.occurred_at.is_(None)))
    human = conn.execute(select(func.count(distinct(w.email_key))).where(
        *counted, w.machine == false())).scalar_one()
    anyone = conn.execute(select(func.count(distinct(w.email_key))).where(*counted)
                          ).scalar_one()
    return int(human), int(anyone) - int(human)


def people_who_acted(engine: Engine, counted: Sequence[tuple[int, dt.datetime]], measure: str
                     ) -> list[tuple[int, int]]:
    """`acted()` for each (send id, until)."""
    with engine.connect() as conn:
        return [acted(conn, send_id, until, measure) for send_id, until in counted]


def tests_of(conn: Connection, issue: str) -> list[dict[str, Any]]:
    """Every subject test of `issue`, for its report: state, each subject's figures (stored
    with the decision, or so far), the winner and the note."""
    found = []
    tests = conn.execute(select(subject_tests).where(subject_tests.c.issue == issue)
                         .order_by(subject_tests.c.id)).all()
    for test in tests:
        stored = list(test.figures or [])
        rows = []
        for index, subject in enumerate(test.subjects):
            row = stored[index] if index < len(stored) else _so_far(conn, test, index)
            rows.append({"label": letter(index), "subject": subject,
                         "reached": row["reached"], "people": row["people"],
                         "rate": row["rate"], "machine": row["machine"],
                         "winner": test.decided_at is not None and test.winner == index})
        found.append({"id": test.id, "segment": test.segment, "state": test.state,
                      "measure": test.measure, "sample": test.sample, "level": test.level,
                      "decided": test.decided_at is not None,
                      "decide_at": test.decide_at.isoformat() if test.decide_at else None,
                      "note": test.note, "subjects": rows})
    return found


def _so_far(conn: Connection, test: Any, index: int) -> dict[str, Any]:
    """A subject's figures before the decision: its send's people so far."""
    label = subject_test_label(test.segment, test.id, letter(index))
    send = conn.execute(select(sends.c.id, sends.c.accepted).where(
        sends.c.issue == test.issue, sends.c.segment == label).order_by(sends.c.id.desc())
    ).first()
    if send is None:
        return {"reached": 0, "people": 0, "rate": 0.0, "machine": 0}
    people, machine = acted(conn, send.id, None, test.measure)
    return {"reached": send.accepted, "people": people, "machine": machine,
            "rate": people / send.accepted if send.accepted else 0.0}
