"""Dispatch benchmark: 1,000,000 subscribers through SendGrid (a local fake), 20,000 to the outbox.

Targets (docs/performance.md, "Dispatch"): the SendGrid send of 1M recipients in at most 60 s
wall with a peak RSS of at most 300 MB (memory must not grow with the segment); the outbox at
least 1,000 messages per second. Each send is the real `python -m newsletter send` in its own
process (peak RSS from wait4); the fake SendGrid server runs in another process, validates
every request like SendGrid and counts deliveries, so exactly-once is checked too.

    python bench/dispatch.py [--subscribers 1000000] [--outbox 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2026-11-24"
SG_LIMIT_S, RSS_LIMIT_MB, OUTBOX_MIN_RATE = 60.0, 300.0, 1000.0


def publication(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", folder / "newsletter.yaml")
    shutil.copytree(ROOT / "issues", folder / "issues")
    (folder / "subscribers").mkdir()
    (folder / "subscribers" / "segments.yaml").write_text("segments:\n  everyone: {}\n")
    return folder


def fill(db_url: str, count: int) -> float:
    """Create the schema and `count` active subscribers; returns seconds taken."""
    sys.path.insert(0, str(ROOT))
    from newsletter.db import open_database

    open_database(db_url).dispose()
    started = time.perf_counter()
    con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    attrs = json.dumps({"role": "press", "country": "US"})
    step = 100_000
    for start in range(0, count, step):
        rows = [(f"reader{n:07d}@example.com", f"reader{n:07d}@example.com", f"Reader {n}",
                 "active", attrs, "bench", now, now, now)
                for n in range(start, min(count, start + step))]
        con.executemany("INSERT INTO subscribers (email, email_key, name, status, attributes, "
                        "source, created_at, updated_at, status_changed_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.commit()
    con.close()
    return time.perf_counter() - started


def send(pub: Path, env: dict[str, str], transport: str) -> tuple[float, float, str]:
    """Run `newsletter send`; returns (wall seconds, peak RSS in MB, output)."""
    args = [sys.executable, "-m", "newsletter", "-C", str(pub), "send", SLUG, "--segment",
            "everyone", "--transport", transport, "--yes", "--skip-url-check"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"newsletter send failed:\n{text}")
    return wall, usage.ru_maxrss / 1024, text


def send_phase(db_url: str) -> float:
    """Seconds from the send's creation (snapshot included) to its completion."""
    con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    created, finished = con.execute("SELECT created_at, finished_at FROM sends").fetchone()
    con.close()
    took = dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(created)
    return took.total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--outbox", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="newsletter-bench-dispatch-"))
    base_env = {**os.environ, "PYTHONPATH": str(ROOT),
                "NEWSLETTER_SECRET": "bench-secret-of-at-least-32-characters"}
    results: dict[str, object] = {}
    try:
        # -- SendGrid: 1M recipients to the fake server ------------------------------------
        pub = publication(work / "sg")
        db = f"sqlite:///{pub / '.newsletter' / 'newsletter.db'}"
        print(f"filling {args.subscribers:,} subscribers ...", flush=True)
        fill_s = fill(db, args.subscribers)
        fake = subprocess.Popen([sys.executable, "-m", "tests.fake_sendgrid", "--count-only"],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            port = int(fake.stdout.readline().split()[1])
            url = f"http://127.0.0.1:{port}"
            env = {**base_env, "NEWSLETTER_DATABASE_URL": db, "SENDGRID_API_URL": url,
                   "SENDGRID_API_KEY": "SG.fake-test-key"}
            print("sending through sendgrid ...", flush=True)
            wall, rss, _ = send(pub, env, "sendgrid")
            request = urllib.request.Request(f"{url}/_fake/stats", headers={
                "Authorization": "Bearer SG.fake-test-key"})
            with urllib.request.urlopen(request) as response:
                stats = json.load(response)
        finally:
            fake.terminate()
            fake.wait()
        ok = (stats["accepted"] == args.subscribers and stats["unique"] == args.subscribers
              and stats["duplicates"] == 0)
        results["sendgrid"] = {
            "recipients": args.subscribers, "fill_s": round(fill_s, 1), "wall_s": round(wall, 1),
            "send_phase_s": round(send_phase(db), 1), "peak_rss_mb": round(rss, 1),
            "requests": stats["requests"], "exactly_once": ok,
        }
        # -- outbox: 20,000 .eml files -------------------------------------------------------
        pub = publication(work / "outbox")
        db = f"sqlite:///{pub / '.newsletter' / 'newsletter.db'}"
        fill(db, args.outbox)
        env = {**base_env, "NEWSLETTER_DATABASE_URL": db}
        print("sending to the outbox ...", flush=True)
        wall, rss, _ = send(pub, env, "outbox")
        phase = send_phase(db)
        files = sum(1 for _ in (pub / "outbox" / SLUG / "1").glob("*.eml"))
        results["outbox"] = {
            "messages": args.outbox, "files": files, "wall_s": round(wall, 1),
            "send_phase_s": round(phase, 2), "rate_per_s": round(args.outbox / phase),
            "rate_with_startup_per_s": round(args.outbox / wall), "peak_rss_mb": round(rss, 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    sg, box = results["sendgrid"], results["outbox"]
    checks = {
        f"sendgrid {sg['recipients']:,} in <= {SG_LIMIT_S:.0f} s": sg["wall_s"] <= SG_LIMIT_S,
        f"sendgrid peak RSS <= {RSS_LIMIT_MB:.0f} MB": sg["peak_rss_mb"] <= RSS_LIMIT_MB,
        "sendgrid exactly once": sg["exactly_once"],
        f"outbox >= {OUTBOX_MIN_RATE:.0f} msg/s": box["rate_per_s"] >= OUTBOX_MIN_RATE,
        "outbox one file each": box["files"] == box["messages"],
    }
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    if args.subscribers == 1_000_000 and not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
