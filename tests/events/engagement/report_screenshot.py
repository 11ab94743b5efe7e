"""Regenerate docs/img/report.png: `python -m tests.events.engagement.report_screenshot`.

Builds the sample issue, records a SendGrid send of it to 5,000 readers in a temporary SQLite
database with seeded, made-up events (people's opens and clicks spread over three days, Apple proxy
opens, scanner bursts), writes report.html exactly as `newsletter report` does and photographs
it in headless Chromium. Nothing in the repository changes but the picture.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import insert

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT

OUT = ROOT / "docs" / "img" / "report.png"
SLUG = "2026-11-24"
READERS = 5_000


def make_report(root: Path) -> Path:
    """Set up the publication's database with a send and its events; return report.html."""
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication
    from newsletter.db import open_database
    from newsletter.db.ledger_tables import send_recipients, sends
    from newsletter.db.tables import webhook_events
    from newsletter.events.report import issue_report
    from newsletter.events.report_sends import PieceInfo, record_contents
    from newsletter.events.tracking import link_rows, store_links
    from newsletter.web.report_page import report_html

    pub = Publication.load(root)
    build = build_issue(pub, SLUG)
    engine = open_database(pub.settings)
    began = dt.datetime(2026, 11, 24, 14, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(sends).values(
            id=1, issue=SLUG, segment="everyone", transport="sendgrid", content_hash="0" * 64,
            subject=build.subject, state="completed", total=READERS, accepted=READERS,
            failed=0, unknown=0, batches=5, created_at=began, updated_at=began))
        conn.execute(insert(send_recipients), [
            {"send_id": 1, "email": f"r{who}@example.org", "name": "", "attributes": {},
             "state": "accepted"} for who in range(READERS)])
    pieces = [(p.meta.title, p.meta.expert) for p in build.issue.pieces]
    store_links(engine, 1, link_rows(build.links, pieces))
    record_contents(engine, 1, [PieceInfo(n, p.meta.title, p.meta.expert, p.expert.name)
                                for n, p in enumerate(build.issue.pieces, start=1)],
                    click_tracking=False)
    rng = random.Random(3)
    tracked = [link for link in build.links if link.trackable]
    weight = {1: 5, 2: 3, 3: 2, 4: 4, 0: 1}
    rows, n = [], 0

    def add(kind: str, who: int, hours: float, machine: bool, position=None, reason=None):
        nonlocal n
        n += 1
        rows.append({"sg_event_id": f"s{n}", "event": kind, "email_key": f"r{who}@example.org",
                     "send_id": 1, "occurred_at": began + dt.timedelta(hours=hours),
                     "received_at": began, "machine": machine, "position": position,
                     "reason": reason})

    for who in range(READERS):
        if rng.random() < 0.3:  # Apple Mail Privacy Protection fetches at delivery
            add("open", who, rng.random() * 0.2, True, reason="proxy")
        if rng.random() < 0.38:
            at = rng.expovariate(1 / 9)
            add("open", who, at, False)
            if rng.random() < 0.3:
                link = rng.choices(tracked, [weight[x.piece] for x in tracked])[0]
                add("click", who, at + rng.random() * 0.3, False, link.position)
        if rng.random() < 0.04:  # a scanner follows every link at once
            for link in tracked:
                add("click", who, 0.001, True, link.position, "burst")
    with engine.begin() as conn:
        conn.execute(insert(webhook_events), rows)
    with engine.connect() as conn:
        report = issue_report(conn, SLUG)
    engine.dispose()
    assert report is not None
    page = root / "dist" / SLUG / "report.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(report_html(report), encoding="utf-8")
    return page


def main() -> None:
    import os

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pub"
        root.mkdir()
        shutil.copy(ROOT / "newsletter.yaml", root)
        shutil.copytree(ROOT / "issues", root / "issues")
        os.environ["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'report.db'}"
        page = make_report(root)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport={"width": 800, "height": 1000})
            tab.goto(page.as_uri())
            tab.screenshot(path=str(OUT), full_page=True)
            browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
