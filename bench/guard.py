"""Reputation guard benchmark: what its check before each batch costs on a big send.

Sets up a fresh SQLite database (or --database-url) with one send of 200,000 recipients, all
handed over, and the per-send counters its events left (`engagement`: a row per person, with
deliveries, opens and clicks, and 4.5% hard bounces and 0.08% complaints: a send just under
its thresholds, the guard's busiest case), plus as many of another send. Then it runs the
guard's check (dispatch.guard.ReputationGuard.check: the send's counters, then its people who
bounced and complained, counted from the partial indexes) once per batch of 1,000, as a
SendGrid send of that size would, checks the verdict, and prints the time per check, in all,
and beside the same counts read from every row of the send (what they would cost without the
partial indexes), measured side by side. Target: the check at least 10 times faster than that
read; its share of the send's own time (about 25 s at 8,000 recipients/s, docs/performance.md)
is printed. Usage:

    python bench/guard.py [--database-url URL]
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

from newsletter.core.reputation import Thresholds  # noqa: E402
from newsletter.db import open_database  # noqa: E402
from newsletter.db.ledger_tables import sends  # noqa: E402
from newsletter.db.tables import engagement  # noqa: E402
from newsletter.dispatch.guard import ReputationGuard  # noqa: E402

RECIPIENTS = 200_000
BATCH = 1_000
BOUNCES, COMPLAINTS = 9_000, 160  # 4.5% and 0.08%: warnings, no pause
TARGET_RATIO = 10
SEND_SECONDS = 25.0  # a 200,000 SendGrid send at 8,000/s (docs/performance.md, Dispatch)


def setup(url: str, seed: int = 5) -> float:
    """Fill the database; return the seconds it took."""
    start = time.perf_counter()
    engine = open_database(url)
    rng = random.Random(seed)
    at = dt.datetime(2026, 11, 24, 14, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for send_id in (1, 2):
            conn.execute(insert(sends).values(
                id=send_id, issue=f"2026-11-{17 + 7 * (send_id - 1)}", segment="everyone",
                transport="sendgrid", content_hash="0" * 64, subject="Bench",
                state="completed", total=RECIPIENTS, accepted=RECIPIENTS, failed=0, unknown=0,
                batches=RECIPIENTS // BATCH, created_at=at, updated_at=at))
            rows = [{"send_id": send_id, "email_key": f"reader{n}@example.org",
                     "delivered": 1, "opens": rng.randrange(3), "clicks": rng.randrange(2),
                     "deferred": 0, "bounces": int(n < BOUNCES), "blocked": 0, "dropped": 0,
                     "complaints": int(BOUNCES <= n < BOUNCES + COMPLAINTS),
                     "unsubscribes": 0, "last_event_at": at}
                    for n in range(RECIPIENTS)]
            for chunk in range(0, len(rows), 20_000):
                conn.execute(insert(engagement), rows[chunk:chunk + 20_000])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE engagement" if engine.dialect.name ==
                             "postgresql" else "ANALYZE")
    engine.dispose()
    return time.perf_counter() - start


#: the same counts read from every row of the send (`+ 0`: not the partial indexes' condition)
SCAN = ("SELECT (SELECT count(*) FROM engagement WHERE send_id = 1 AND bounces + 0 > 0), "
        "(SELECT count(*) FROM engagement WHERE send_id = 1 AND complaints + 0 > 0)")


def run(url: str) -> tuple[float, float, int]:
    """(seconds for every check of the send, for as many reads of all its rows, checks)."""
    engine = open_database(url)
    try:
        guard = ReputationGuard(engine, 1, Thresholds())
        checks = RECIPIENTS // BATCH
        start = time.perf_counter()
        for _ in range(checks):
            verdict = guard.check()
        took = time.perf_counter() - start
        assert verdict.judged and verdict.pause is None, verdict
        assert verdict.figures.hard == BOUNCES and verdict.figures.complaints == COMPLAINTS
        assert len(verdict.warnings) == 2, verdict.warnings
        start = time.perf_counter()
        with engine.connect() as conn:
            for _ in range(checks):
                assert conn.exec_driver_sql(SCAN).one() == (BOUNCES, COMPLAINTS)
        return took, time.perf_counter() - start, checks
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    folder = None
    url = args.database_url
    if url is None:
        folder = Path(tempfile.mkdtemp(prefix="newsletter-bench-guard-"))
        url = f"sqlite:///{folder / 'bench.db'}"
    try:
        filled = setup(url)
        took, scanned, checks = run(url)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    ratio = scanned / took
    database = url.split(":")[0].split("+")[0]
    print(f"guard ({database}): {checks} checks of a {RECIPIENTS:,}-recipient send "
          f"({BOUNCES:,} people bounced hard, {COMPLAINTS} complained): "
          f"{took * 1000 / checks:.2f} ms per check, {took:.2f} s in all, "
          f"{took / SEND_SECONDS:.1%} of a {SEND_SECONDS:.0f} s send; reading every row of "
          f"the send instead: {scanned * 1000 / checks:.1f} ms per check ({ratio:.0f}x); "
          f"setup {filled:.1f} s")
    if ratio < TARGET_RATIO:
        raise SystemExit(f"under target: the check is only {ratio:.1f}x faster than a read of "
                         f"the send's rows (target {TARGET_RATIO}x)")


if __name__ == "__main__":
    main()
