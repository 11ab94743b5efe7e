"""Unconfirmed sign-up requests expire: NEWSLETTER_SIGNUPS_KEEP_DAYS (7 by default) after the
last request, pruned with the events by `events prune` and by `serve` itself; a confirmed request
stays as the record of consent. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time

from click.testing import CliRunner
from sqlalchemy import insert, select

from newsletter.cli import main
from newsletter.db.tables import signups
from newsletter.events.prune import prune_events
from tests.web.public.conftest import Site, make_client

NOW = dt.datetime.now(dt.UTC)


def _requests(site: Site, ages: dict[str, tuple[int, bool]]) -> None:
    """One sign-up request per address, made `days` ago, confirmed or not."""
    rows = []
    for email, (days, confirmed) in ages.items():
        when = NOW - dt.timedelta(days=days, minutes=1)
        rows.append({"email_key": email, "email": email, "name": "N", "tags": [],
                     "requested_at": when, "window_start": when, "sent_in_window": 1,
                     "last_sent_at": when, "confirmed_at": when if confirmed else None})
    with site.engine.begin() as conn:
        conn.execute(insert(signups), rows)


def _left(site: Site) -> set[str]:
    with site.engine.connect() as conn:
        return set(conn.execute(select(signups.c.email_key)).scalars())


AGES = {"fresh@example.com": (0, False), "week@example.com": (6, False),
        "stale@example.com": (8, False), "ancient@example.com": (400, False),
        "confirmed@example.com": (400, True)}


def test_unconfirmed_sign_ups_expire_and_confirmed_ones_stay(site: Site) -> None:
    _requests(site, AGES)
    report = prune_events(site.engine, 400)
    assert report.signups == 2 and "2 unconfirmed sign-up request(s)" in report.summary()
    assert _left(site) == {"fresh@example.com", "week@example.com", "confirmed@example.com"}
    assert prune_events(site.engine, 400, signups_keep_days=1).signups == 1
    assert _left(site) == {"fresh@example.com", "confirmed@example.com"}


def test_the_setting_and_the_command(site: Site) -> None:
    _requests(site, AGES)
    env = {**site.env, "NEWSLETTER_SIGNUPS_KEEP_DAYS": "5"}
    done = CliRunner().invoke(main, ["-C", str(site.root), "events", "prune"], env=env)
    assert done.exit_code == 0 and "3 unconfirmed sign-up request(s)" in done.output
    assert _left(site) == {"fresh@example.com", "confirmed@example.com"}
    for bad in ("0", "²", "seven", "-3"):
        refused = CliRunner().invoke(main, ["-C", str(site.root), "events", "prune"],
                                     env={**site.env, "NEWSLETTER_SIGNUPS_KEEP_DAYS": bad})
        assert refused.exit_code == 2 and "NEWSLETTER_SIGNUPS_KEEP_DAYS" in refused.output, bad


def test_serve_expires_them_by_itself(site: Site) -> None:
    _requests(site, AGES)
    with make_client(site, prune=True) as client:  # start-up runs the first pruning
        deadline = time.monotonic() + 10
        while len(_left(site)) > 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").status_code == 200
    assert _left(site) == {"fresh@example.com", "week@example.com", "confirmed@example.com"}
