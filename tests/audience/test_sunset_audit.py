"""`subscribers sunset` leaves an audit row for every subscriber it tags or unsubscribes, and
unsubscribes through the status ladder's one API, on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

from sqlalchemy import Engine, select, update

from newsletter.audience.engagement import sunset
from newsletter.audience.history import history_of
from newsletter.audience.subscribers import get_subscriber
from newsletter.db.tables import subscribers
from tests.audience.test_engagement_segments import NOW, PEOPLE, world  # noqa: F401


def _trail(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {name: [(e.source, e.field, e.before, e.after)
                       for e in history_of(conn, get_subscriber(conn, f"{name}@example.org").id)]
                for name in PEOPLE}


def test_sunset_leaves_an_audit_row_for_every_change(world: Engine) -> None:  # noqa: F811
    with world.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.email_key != "eve@example.org")
                     .values(created_at=NOW - dt.timedelta(days=500)))
    before = _trail(world)
    with world.begin() as conn:
        assert sunset(conn, dt.timedelta(days=365), tag="Dormant").matched == 4
    tagged = _trail(world)
    for name in PEOPLE:
        added = tagged[name][len(before[name]):]
        assert added == ([] if name == "eve" else [("sunset", "tag", None, "dormant")]), name
    with world.begin() as conn:
        assert sunset(conn, dt.timedelta(days=365), unsubscribe=True).matched == 4
        statuses = dict(conn.execute(select(subscribers.c.email_key, subscribers.c.status)).all())
    after = _trail(world)
    for name in PEOPLE:
        added = after[name][len(tagged[name]):]
        expected = [] if name == "eve" else [("sunset", "status", "active", "unsubscribed")]
        assert added == expected, name
        assert statuses[f"{name}@example.org"] == ("active" if name == "eve" else "unsubscribed")


def test_sunset_writes_no_status_itself() -> None:
    """Status changes go through newsletter.audience.statuses (and its audit trail)."""
    import newsletter.audience.engagement as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    writes = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
              and getattr(n.func, "id", getattr(n.func, "attr", "")) == "update"]
    assert writes == []
