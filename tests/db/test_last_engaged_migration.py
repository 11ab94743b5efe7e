"""The migration that adds `subscribers.last_engaged_at` fills it from the events a database
already holds (an upgrade), on SQLite and PostgreSQL: each subscriber's latest human open or
click; machines' opens and clicks, other events, events without a time and other people's
events do not count; a subscriber with none stays NULL; `engaged_within` then agrees."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import yaml
from sqlalchemy import select, text

from newsletter.audience import Segments
from newsletter.db import connect, upgrade
from newsletter.db.migrations import MIGRATIONS
from newsletter.db.tables import subscribers

#: the schema before it
BEFORE = next(m.version for m in MIGRATIONS
              if m.description == "subscribers' last human engagement") - 1
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)


def test_the_upgrade_fills_the_last_engagement_from_stored_events(db_url: str,
                                                                   tmp_path: Path) -> None:
    rng = random.Random(31)
    people = [f"p{i}@example.org" for i in range(40)]
    events = [(f"e{n}", rng.choice(["open", "click", "delivered", "bounce"]),
               rng.choice([*people, "stranger@example.org"]), rng.random() < 0.3,
               None if rng.random() < 0.05 else NOW - dt.timedelta(hours=rng.randint(0, 2000)))
              for n in range(300)]
    engine = connect(db_url)
    try:
        upgrade(engine, MIGRATIONS[:BEFORE])
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO subscribers (email, email_key, name, status, attributes, source, "
                "created_at, updated_at, status_changed_at) VALUES (:e, :e, '', 'active', "
                "'{}', 'test', :t, :t, :t)"), [{"e": p, "t": NOW} for p in people])
            conn.execute(text(
                "INSERT INTO webhook_events (sg_event_id, event, email_key, occurred_at, "
                "received_at, machine) VALUES (:id, :event, :key, :at, :now, :machine)"),
                [{"id": i, "event": kind, "key": key, "machine": machine, "at": at, "now": NOW}
                 for i, kind, key, machine, at in events])
        upgrade(engine)
        expected: dict[str, dt.datetime | None] = dict.fromkeys(people)
        for _, kind, key, machine, at in events:
            if key in expected and kind in ("open", "click") and not machine and at:
                expected[key] = max(at, expected[key] or at)
        with engine.connect() as conn:
            found = dict(conn.execute(select(subscribers.c.email_key,
                                             subscribers.c.last_engaged_at)).all())
        assert found == {k: v and v.replace(tzinfo=dt.UTC) for k, v in expected.items()}
        assert 0 < sum(v is None for v in expected.values()) < len(people)
        path = tmp_path / "segments.yaml"
        path.write_text(yaml.safe_dump({"segments": {"recent": {"engaged_within": "30d"}}}),
                        encoding="utf-8")
        with engine.connect() as conn:
            recent = set(conn.execute(select(subscribers.c.email_key).where(
                Segments.load(path).condition("recent"))).scalars())
        since = NOW - dt.timedelta(days=30)
        assert recent == {k for k, at in expected.items() if at and at >= since}
    finally:
        engine.dispose()
