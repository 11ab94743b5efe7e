"""Pause: a paused subscriber stays active but is in no segment until the pause ends; the SQL
of every sample segment agrees with a plain evaluation (rule members minus the paused)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from sqlalchemy import Engine, and_, select, update

from newsletter.audience import Segments, Status, import_csv
from newsletter.audience.model import utcnow
from newsletter.db.tables import subscribers

ROOT = Path(__file__).resolve().parents[2]


def test_every_segment_leaves_paused_subscribers_out_until_the_pause_ends(engine: Engine) -> None:
    import_csv(engine, ROOT / "subscribers" / "sample.csv")
    segments = Segments.load(ROOT)
    now = utcnow()
    rng = random.Random(16)
    with engine.begin() as conn:
        ids = conn.execute(select(subscribers.c.id)).scalars().all()
        pauses = {}
        for sid in ids:  # a mix: no pause, ended, ends soon, ends in weeks
            pauses[sid] = rng.choice([None, now - dt.timedelta(days=3),
                                      now + dt.timedelta(hours=1), now + dt.timedelta(weeks=8)])
            conn.execute(update(subscribers).where(subscribers.c.id == sid)
                         .values(paused_until=pauses[sid]))
    assert any(p and p > now for p in pauses.values()) and None in pauses.values()
    later = now + dt.timedelta(weeks=9)
    with engine.connect() as conn:
        for name in segments.names:
            by_rule = set(conn.execute(select(subscribers.c.id).where(and_(
                subscribers.c.status == Status.ACTIVE.value,
                segments.rule_condition(name)))).scalars())
            expected = {sid for sid in by_rule if pauses[sid] is None or pauses[sid] <= now}
            got = set(conn.execute(select(subscribers.c.id)
                                   .where(segments.condition(name, now))).scalars())
            assert got == expected, name
            assert segments.count(conn, name) == len(expected)
            after = set(conn.execute(select(subscribers.c.id)
                                     .where(segments.condition(name, later))).scalars())
            assert after == by_rule, name  # every pause has ended by then
