"""Audience benchmark: import a 1,000,000-row CSV, then count and stream segments.

Targets on SQLite (docs/performance.md): import <= 60 s with peak RSS <= 300 MB; counting a
tag-based segment <= 2 s. The import runs as `newsletter subscribers import` in a child process,
so its peak RSS is measured alone. Usage:

    python bench/audience.py [--rows N] [--database-url URL] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from newsletter.audience import Segments  # noqa: E402
from newsletter.db import open_database  # noqa: E402

IMPORT_S, PEAK_MB, COUNT_S = 60, 300, 2.0  # targets on SQLite for 1,000,000 rows
TOPICS = ["energy", "cyber", "tech", "egypt", "middle-east", "trade"]
ROLES = ["press", "policymaker", "academic", "staff", "business"]
COUNTRIES = ["US", "EG", "GB", "DE", "FR", "NG", "IN", "BR", "JP", "AE"]
SEGMENTS = """\
segments:
  everyone: {}
  cyber: {tag: cyber}
  egypt-press:
    all: [{tag: egypt}, {attr: {role: press}}]
    none: [{tag: staff}]
"""


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write `rows` fictional subscribers on example.org, streaming."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["email", "name", "tags", "role", "country"])
        for i in range(rows):
            tags = ";".join(rng.sample(TOPICS, rng.randint(1, 3)))
            writer.writerow([f"reader{i}@example.org", f"Reader {i}", tags,
                             rng.choice(ROLES), rng.choice(COUNTRIES)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep bench/.data afterwards")
    args = parser.parse_args()

    data = HERE / ".data" / "audience"
    shutil.rmtree(data, ignore_errors=True)
    (data / "subscribers").mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", data / "newsletter.yaml")
    (data / "subscribers" / "segments.yaml").write_text(SEGMENTS, encoding="utf-8")
    url = args.database_url or f"sqlite:///{data / '.newsletter' / 'newsletter.db'}"
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": url}

    csv_path = data / "subscribers.csv"
    started = time.perf_counter()
    generate(csv_path, args.rows)
    print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - started:.1f} s")

    newsletter = [sys.executable, "-m", "newsletter", "-C", str(data)]
    started = time.perf_counter()
    done = subprocess.run([*newsletter, "subscribers", "import", str(csv_path)], env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        sys.exit(f"import failed ({done.returncode}): {done.stderr or done.stdout}")
    print(f"import: {elapsed:.1f} s, peak RSS {peak_mb:.0f} MB ({done.stdout.strip()})")

    engine = open_database(url)
    segments = Segments.load(data)
    timings = {}
    for name in ("cyber", "egypt-press", "everyone"):
        with engine.connect() as conn:
            started = time.perf_counter()
            count = segments.count(conn, name)
            timings[name] = time.perf_counter() - started
            print(f"count {name}: {count:,} in {timings[name]:.2f} s")
    started = time.perf_counter()
    streamed = sum(len(batch) for batch in segments.members(engine, "cyber", batch_size=1000))
    print(f"stream cyber: {streamed:,} members in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    if args.database_url is None and args.rows >= 1_000_000:
        missed = [what for what, ok in (
            (f"import {elapsed:.0f} s > {IMPORT_S} s", elapsed <= IMPORT_S),
            (f"peak RSS {peak_mb:.0f} MB > {PEAK_MB} MB", peak_mb <= PEAK_MB),
            (f"tag count {timings['cyber']:.2f} s > {COUNT_S} s", timings["cyber"] <= COUNT_S),
        ) if not ok]
        if missed:
            sys.exit("target missed: " + "; ".join(missed))
        print("targets met (SQLite, 1,000,000 rows)")


if __name__ == "__main__":
    main()
