"""Report benchmark: `newsletter report` figures over 1,000,000 stored events.

Sets up a fresh SQLite database (or --database-url) with one send of an issue to 100,000
recipients (their ledger rows too: the report counts people), its 15 links across 4 pieces and
the chrome, and --events events (delivered, human
and machine opens, human and scanner clicks, bounces, ...) spread over three days, plus
--other events of other sends that the report must skip. Then it times `issue_report` (every
figure of the report: totals, per piece, per link, the 72-hour timeline) and the expert rollup,
checks the totals against what was generated, and prints the times.
Target on SQLite: the issue report over 1,000,000 events <= 2 s (docs/performance.md). Usage:

    python bench/report.py [--events N] [--other N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from newsletter.db import open_database  # noqa: E402
from newsletter.db.ledger_tables import send_recipients, sends  # noqa: E402
from newsletter.db.tables import send_links  # noqa: E402
from newsletter.events.report import issue_report  # noqa: E402
from newsletter.events.report_experts import expert_report  # noqa: E402

TARGET_S = 2.0
RECIPIENTS = 100_000
PIECES = {1: 3, 2: 3, 3: 2, 4: 3, 0: 4}  # piece -> links (0: the chrome)
MIX = [("delivered", 10), ("open", 45), ("click", 15), ("processed", 20), ("deferred", 5),
       ("bounce", 2), ("unsubscribe", 1), ("spamreport", 2)]


def _links() -> list[dict]:
    rows, position = [], 0
    for piece, count in PIECES.items():
        for link in range(1, count + 1):
            position += 1
            rows.append({"position": position, "piece": piece, "link": link,
                         "url": f"https://example.org/{piece}/{link}",
                         "title": f"Piece {piece}" if piece else "",
                         "expert": f"expert-{piece}" if piece else ""})
    return rows


def setup(url: str, count: int, other: int, seed: int = 11) -> tuple[dict, float]:
    """Fill the database; return the expected totals and the seconds it took."""
    start = time.perf_counter()
    engine = open_database(url)
    rng = random.Random(seed)
    began = dt.datetime(2026, 11, 24, 14, 0, tzinfo=dt.UTC)
    links = _links()
    with engine.begin() as conn:
        for send_id, issue in ((1, "2026-11-24"), (2, "2026-11-17")):
            conn.execute(insert(sends).values(
                id=send_id, issue=issue, segment="everyone", transport="smtp",
                content_hash="0" * 64, subject="Bench", state="completed", total=RECIPIENTS,
                accepted=RECIPIENTS, failed=0, unknown=0, batches=100, created_at=began,
                updated_at=began))
            conn.execute(insert(send_links), [{"send_id": send_id, **row} for row in links])
            conn.execute(insert(send_recipients), [
                {"send_id": send_id, "email": f"reader{who}@example.org", "name": "",
                 "attributes": {}, "state": "accepted"} for who in range(RECIPIENTS)])
    kinds = [k for k, share in MIX for _ in range(share)]
    expected = {"human_clicks": 0, "machine_clicks": 0, "human_opens": 0, "machine_opens": 0}
    rows_sql = []
    for n in range(count + other):
        send_id = 1 if n < count else 2
        kind = rng.choice(kinds)
        machine = kind in ("open", "click") and rng.random() < 0.4
        who = rng.randrange(RECIPIENTS)
        at = began + dt.timedelta(seconds=rng.randrange(3 * 86400))
        position = rng.randrange(1, len(links) + 1) if kind == "click" else None
        if send_id == 1 and kind in ("open", "click"):
            expected[("machine_" if machine else "human_") + kind + "s"] += 1
        rows_sql.append((f"ev{n}", kind, f"reader{who}@example.org", send_id,
                         at.replace(tzinfo=None).isoformat(sep=" "),
                         began.replace(tzinfo=None).isoformat(sep=" "),
                         f"https://example.org/{position}" if position else None, position,
                         "Mozilla/5.0" if kind in ("open", "click") else None, None, None,
                         machine, "burst" if machine else None))
    columns = ("sg_event_id", "event", "email_key", "send_id", "occurred_at", "received_at",
               "url", "position", "user_agent", "ip", "provider_machine", "machine", "reason")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        marks = ", ".join(["?" if engine.dialect.name == "sqlite" else "%s"] * len(columns))
        sql = f"INSERT INTO webhook_events ({', '.join(columns)}) VALUES ({marks})"
        for chunk in range(0, len(rows_sql), 50_000):
            cursor.executemany(sql, rows_sql[chunk : chunk + 50_000])
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    engine.dispose()
    return expected, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--other", type=int, default=100_000, help="events of another send")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="newsletter-bench-report-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    try:
        expected, setup_s = setup(url, args.events, args.other)
        engine = open_database(url)
        times, expert_times = [], []
        for _ in range(args.runs):
            with engine.connect() as conn:
                start = time.perf_counter()
                report = issue_report(conn, "2026-11-24")
                times.append(time.perf_counter() - start)
                start = time.perf_counter()
                experts = expert_report(conn)
                expert_times.append(time.perf_counter() - start)
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert report is not None
    got = {"human_clicks": report.clicks, "machine_clicks": report.machine_clicks,
           "human_opens": report.opens, "machine_opens": report.machine_opens}
    problems = [] if got == expected else [f"totals {got} != expected {expected}"]
    if report.recipients != RECIPIENTS:
        problems.append(f"{report.recipients:,} people reached, not {RECIPIENTS:,}")
    if sum(p.clicks + p.machine_clicks for p in report.pieces) != sum(got[k] for k in (
            "human_clicks", "machine_clicks")):
        problems.append("per-piece clicks do not add up to the total")
    best = min(times)
    backend = url.split(":", 1)[0]
    print(f"{args.events:,} events of the issue (+{args.other:,} of another send), {backend}; "
          f"set-up {setup_s:.1f} s")
    print(f"issue report: best {best:.2f} s of {args.runs} (all: "
          f"{', '.join(f'{t:.2f}' for t in times)}) (target <= {TARGET_S:.0f} s); "
          f"--by expert: best {min(expert_times):.2f} s over {len(experts)} experts")
    print(f"report: {report.human_clickers:,} people clicked ({report.clicks:,} clicks, "
          f"{report.machine_clicks:,} machine), {report.human_openers:,} people opened")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems or (backend == "sqlite" and best > TARGET_S):
        sys.exit(1)


if __name__ == "__main__":
    main()
