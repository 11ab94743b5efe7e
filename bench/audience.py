"""Audience benchmark: import, re-import and segments on SQLite and PostgreSQL, side by side.

Generates N fictional subscribers (CSV: email, name, 1-3 topic tags, role, country), then on
each database in turn: imports them in a child process (its peak RSS measured alone, and on
PostgreSQL the CPU of every backend it used, the chunks' connections included; on SQLite
a second thread keeps asking for the write lock, as a running send would, and records how long
it had to wait), imports the same file again (every row unchanged), adds four sends' worth of
engagement (half the list reads: about 30 % open each send, some opens by machines), and
times every segment of SEGMENTS (the sample publication's, and engagement conditions alone,
inside `any` and inside `none`): its count, and its members' ids into a temporary table (the
segment's part of a send's snapshot), each run twice, wall-clock and CPU seconds (on PostgreSQL
the client's and its server process's, read from /proc: on a shared machine the CPU time is the
steadier one); then once a send's whole snapshot (newsletter.dispatch.ledger.recipients.snapshot,
rolled back), which also writes each member's address, name and attributes into the ledger in
id order: printed beside, not held to the segment target. Member counts must agree between the
databases.

Size: `--rows`, else NEWSLETTER_BENCH_ROWS, else 100,000 (`NEWSLETTER_BENCH_ROWS=1000000 make
bench` gives the figures in docs/performance.md). PostgreSQL: `--postgres URL`, else
NEWSLETTER_BENCH_POSTGRES_URL, else NEWSLETTER_TEST_POSTGRES_URL: an admin URL of a server
where the role may CREATE DATABASE (the bench makes and drops its own); without one, only
SQLite runs. Targets, checked at 1,000,000 rows (exit status 1 when one is missed): import and
re-import on PostgreSQL within 1.2x of SQLite; every segment's count and id snapshot <= 1 s on
both; on SQLite an
import <= 60 s with peak RSS <= 300 MB, and no writer waiting more than about a second.

    python bench/audience.py [--rows N] [--postgres URL] [--only sqlite|postgresql] [--keep]
                             [--imports-only]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import yaml  # noqa: E402
from sqlalchemy import (  # noqa: E402
    BigInteger,
    Column,
    MetaData,
    Table,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url  # noqa: E402
from support.ledger_world import cpu_of, drop_database  # noqa: E402

from newsletter.audience import Segments  # noqa: E402
from newsletter.audience.engaged import refresh_engaged  # noqa: E402
from newsletter.audience.model import utcnow  # noqa: E402
from newsletter.db import open_database  # noqa: E402
from newsletter.db.ledger_tables import sends  # noqa: E402
from newsletter.db.tables import send_links, subscribers  # noqa: E402
from newsletter.dispatch.ledger.recipients import snapshot as ledger_snapshot  # noqa: E402

FULL = 1_000_000
RATIO, SEGMENT_S, LOCK_S = 1.2, 1.0, 1.2  # targets at FULL rows
IMPORT_S, PEAK_MB = 60, 300  # SQLite at FULL rows
#: The bench's own database: named by process, so two runs on one server do not drop each other's.
BENCH_DB = f"newsletter_bench_audience_{os.getpid()}"
TOPICS = ["energy", "cyber", "tech", "egypt", "middle-east", "trade", "staff"]
ROLES = ["press", "policymaker", "academic", "staff", "business"]
COUNTRIES = ["US", "EG", "GB", "DE", "FR", "NG", "IN", "BR", "JP", "AE"]
ISSUES = ["2026-11-03", "2026-11-10", "2026-11-17", "2026-11-24"]  # one send each, a week apart
PIECE_OF = {1: 0, 2: 1, 3: 1, 4: 2, 5: 3}  # link position -> piece
SAMPLE = yaml.safe_load((ROOT / "subscribers" / "segments.yaml").read_text("utf-8"))["segments"]
SEGMENTS = {
    **SAMPLE,
    "opened-last": {"opened": ISSUES[-1]},
    "clicked-piece": {"clicked": {"issue": ISSUES[-1], "piece": 1}},
    "engaged-or-press": {"any": [{"engaged_within": "30d"}, {"attr": {"role": "press"}}]},
    "energy-lapsed": {"all": [{"tag": "energy"}],
                      "none": [{"opened": ISSUES[-2]}, {"clicked": ISSUES[-1]}]},
    "nested-engagement": {"any": [{"all": [{"tag": "cyber"}, {"engaged_within": "14d"}]},
                                  {"none": [{"engaged_within": "60d"}]}]},
}
CHILD = """\
import json, resource, sys
sys.path.insert(0, sys.argv[3])
from audience import database_cpu
from newsletter.audience import import_csv
from newsletter.db import open_database
engine = open_database(sys.argv[1])
engine.pool.dispose()  # none open but those this process opens from here on
pg = engine.dialect.name == "postgresql"
with engine.connect() as conn:
    server = database_cpu(conn) if pg else 0.0
report = import_csv(engine, sys.argv[2])
with engine.connect() as conn:  # the connections that applied chunks are still in the pool
    server = database_cpu(conn) - server if pg else 0.0
me = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"summary": report.summary(), "chunks": report.chunks,
                  "longest_write_s": report.longest_write_s,
                  "cpu_s": me.ru_utime + me.ru_stime, "server_cpu_s": server,
                  "peak_mb": me.ru_maxrss / 1024}))
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


class LockProbe(threading.Thread):
    """SQLite: take and release the write lock every 50 ms; record the longest wait."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.stop, self.longest, self.probes = path, threading.Event(), 0.0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            conn = sqlite3.connect(self.path, timeout=300, isolation_level=None)
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            self.longest = max(self.longest, time.perf_counter() - started)
            conn.execute("COMMIT")
            conn.close()
            self.probes += 1
            self.stop.wait(0.05)


def import_child(url: str, csv_path: Path, probe: Path | None) -> dict:
    """Run one import in a child process: wall time, its own peak RSS, its report."""
    prober = LockProbe(probe) if probe else None
    if prober:
        prober.start()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url, str(csv_path), str(HERE)],
                            cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    if prober:
        prober.stop.set()
        prober.join()
    if proc.returncode != 0:
        sys.exit(f"import failed ({proc.returncode}): {err}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(seconds=elapsed)
    if prober:
        result.update(lock_wait_s=prober.longest, probes=prober.probes)
    return result


def add_engagement(url: str, rows: int) -> float:
    """Four sends a week apart with their links, and their opens and clicks."""
    engine = open_database(url)
    now = utcnow()
    started = time.perf_counter()
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for n, issue in enumerate(ISSUES, start=1):
            conn.execute(insert(sends).values(
                id=n, issue=issue, segment="everyone", transport="outbox",
                content_hash="0" * 64, subject="S", state="completed", total=rows,
                accepted=rows, failed=0, unknown=0, batches=1, created_at=now,
                updated_at=now))
            conn.execute(insert(send_links), [
                {"send_id": n, "position": p, "piece": piece, "link": p, "title": "",
                 "expert": "", "url": f"https://example.org/{p}"}
                for p, piece in PIECE_OF.items()])
        for n in range(1, len(ISSUES) + 1):
            days = 7 * (len(ISSUES) - n)
            when = (f"(now() AT TIME ZONE 'UTC') - make_interval(days => {days}, "
                    "hours => (id % 48)::int)" if pg else
                    f"strftime('%Y-%m-%d %H:%M:%S', 'now', '-{days} days', "
                    "'-' || (id % 48) || ' hours') || '.000000'")
            # Half the list reads: each send, three in five of them open (some opens are
            # machines'), one in ten clicks; so about 30 % open a send and 50 % are engaged.
            for kind, share, position in (("open", "< 3", "NULL"), ("click", "= 0", "1 + id % 5")):
                modulus = 5 if kind == "open" else 10
                conn.execute(text(
                    "INSERT INTO webhook_events (sg_event_id, event, email_key, send_id, "
                    "occurred_at, received_at, machine, position) "
                    f"SELECT '{kind}-{n}-' || id, '{kind}', email_key, {n}, {when}, {when}, "
                    f"(id % 7 = 0), {position} FROM subscribers "
                    f"WHERE id % 2 = 0 AND (id / 2 + {n}) % {modulus} {share}"))
        refresh_engaged(conn)  # a bulk load: each subscriber's last human engagement at once
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE webhook_events, sends, send_links"))  # a bulk load
    engine.dispose()
    return time.perf_counter() - started


def backend_cpu(conn) -> float:
    """CPU seconds of this connection's PostgreSQL backend (a server on this machine)."""
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(conn) -> float:
    """CPU seconds of every backend connected to this connection's database now."""
    pids = conn.exec_driver_sql("SELECT pid FROM pg_stat_activity "
                                "WHERE datname = current_database()").scalars().all()
    return sum(cpu_of(pid) for pid in pids)  # 0 for a backend gone meanwhile


def _clocked(conn, run) -> tuple[float, float, object]:
    """Wall and CPU seconds (this process's, and its PostgreSQL backend's) of `run()`."""
    pg = conn.dialect.name == "postgresql"
    cpu = time.process_time() + (backend_cpu(conn) if pg else 0.0)
    started = time.perf_counter()
    value = run()
    wall = time.perf_counter() - started
    cpu = time.process_time() + (backend_cpu(conn) if pg else 0.0) - cpu
    return wall, cpu, value


def _timed(conn, statement) -> tuple[float, float, object]:
    """Wall and CPU seconds of a statement, and its scalar (or its row count)."""
    def run() -> object:
        result = conn.execute(statement)
        return result.scalar() if result.returns_rows else result.rowcount
    return _clocked(conn, run)


def send_snapshot(conn, segments: Segments, name: str) -> tuple[float, float, int]:
    """A send's own snapshot of the segment (newsletter.dispatch.ledger.recipients.snapshot:
    each member's id, address, name and attributes, in id order, into the ledger's rows),
    rolled back: wall and CPU seconds, rows."""
    now = utcnow()
    with conn.begin() as transaction:
        send_id = conn.execute(select(func.coalesce(func.max(sends.c.id), 0) + 1)).scalar()
        conn.execute(insert(sends).values(
            id=send_id, issue="bench", segment=name, transport="outbox", content_hash="0" * 64,
            subject="S", state="completed", total=0, accepted=0, failed=0, unknown=0,
            batches=0, created_at=now, updated_at=now))
        members = segments.condition(name)  # the snapshot returns the rows it wrote
        wall, cpu, rows = _clocked(conn, lambda: ledger_snapshot(conn, send_id, members))
        transaction.rollback()
    return wall, cpu, rows


def time_segments(url: str, folder: Path) -> dict[str, dict]:
    """Each segment twice: its count, and its members' ids into a temporary table (the
    segment's part of a send's snapshot), wall and CPU seconds; then once a send's whole
    snapshot (`send_snapshot`: the ledger's rows written too)."""
    engine = open_database(url)
    segments = Segments.load(folder)
    found: dict[str, dict] = {}
    snapshot = Table("bench_members", MetaData(), Column("id", BigInteger),
                     prefixes=["TEMPORARY"])
    with engine.connect() as conn:
        with conn.begin():
            snapshot.create(conn)
        for name in segments.names:
            f: dict = {"count_s": [], "count_cpu": [], "snapshot_s": [], "snapshot_cpu": []}
            for _ in range(2):
                with conn.begin():
                    wall, cpu, f["members"] = _timed(conn, select(func.count()).select_from(
                        subscribers).where(segments.condition(name)))
                    f["count_s"].append(wall)
                    f["count_cpu"].append(cpu)
                with conn.begin() as transaction:
                    wall, cpu, _ = _timed(conn, insert(snapshot).from_select(
                        ["id"], select(subscribers.c.id).where(segments.condition(name))))
                    rows = conn.execute(select(func.count()).select_from(snapshot)).scalar()
                    transaction.rollback()
                f["snapshot_s"].append(wall)
                f["snapshot_cpu"].append(cpu)
                assert rows == f["members"], (name, rows, f["members"])
            wall, cpu, rows = send_snapshot(conn, segments, name)
            f.update(send_s=[wall], send_cpu=[cpu])
            assert rows == f["members"], (name, rows, f["members"])
            found[name] = f
    started = time.perf_counter()
    streamed = sum(len(batch) for batch in segments.members(engine, "cyber", batch_size=1000))
    found["(stream cyber)"] = {"members": streamed, "count_s": [time.perf_counter() - started],
                               "count_cpu": [], "snapshot_s": [], "snapshot_cpu": []}
    engine.dispose()
    return found


def _span(values: list[float]) -> str:
    return "" if not values else f"{min(values):.2f}-{max(values):.2f}"


def run(label: str, url: str, folder: Path, csv_path: Path, rows: int,
        segments: bool = True) -> dict:
    print(f"\n== {label}")
    open_database(url).dispose()
    probe = Path(make_url(url).database) if label == "sqlite" else None
    first = import_child(url, csv_path, probe)
    print(f"import: {first['seconds']:.1f} s, CPU {_cpu(first)}, "
          f"peak RSS {first['peak_mb']:.0f} MB, "
          f"{first['chunks']} write transactions, the longest {first['longest_write_s']:.2f} s"
          + (f"; another writer waited {first['lock_wait_s']:.2f} s at most "
             f"({first['probes']} probes)" if probe else "") + f" ({first['summary']})")
    again = import_child(url, csv_path, probe)
    print(f"re-import, all unchanged: {again['seconds']:.1f} s, CPU {_cpu(again)}, "
          f"{again['chunks']} write "
          f"transactions ({again['summary']})")
    if not segments:
        return {"import": first, "reimport": again, "segments": {}}
    print(f"engagement: {add_engagement(url, rows):.1f} s to add the events")
    found = time_segments(url, folder)
    print(f"  {'segment (two runs each)':22} {'members':>9}  count: wall, CPU (s)    "
          "snapshot: wall, CPU (s)    a send's snapshot, once: wall, CPU (s)")
    for name, f in found.items():
        print(f"  {name:22} {f['members']:>9,}  {_span(f['count_s']):>9}, "
              f"{_span(f['count_cpu']):>9}     {_span(f['snapshot_s']):>9}, "
              f"{_span(f['snapshot_cpu']):>9}     {_span(f.get('send_s', [])):>9}, "
              f"{_span(f.get('send_cpu', [])):>9}")
    return {"import": first, "reimport": again, "segments": found}


def _cpu(result: dict) -> str:
    """CPU seconds of an import: the child's, and its PostgreSQL backend's."""
    total = result["cpu_s"] + result["server_cpu_s"]
    if not result["server_cpu_s"]:
        return f"{total:.1f} s"
    return f"{total:.1f} s ({result['cpu_s']:.1f} s client + {result['server_cpu_s']:.1f} s server)"


def fresh_postgres(admin: str) -> str:
    url = make_url(admin).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        drop_database(conn, BENCH_DB)
        conn.execute(text(f"CREATE DATABASE {BENCH_DB}"))
    engine.dispose()
    return url.set(database=BENCH_DB).render_as_string(hide_password=False)


def drop_postgres(admin: str) -> None:
    engine = create_engine(make_url(admin).set(drivername="postgresql+psycopg"),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # waits for an autovacuum worker the role may not end
        drop_database(conn, BENCH_DB)
    engine.dispose()


def verdicts(results: dict[str, dict], rows: int) -> list[str]:
    """Targets missed (at FULL rows), one line each."""
    missed = []
    lite, pg = results.get("sqlite"), results.get("postgresql")
    if lite:
        imp = lite["import"]
        if imp["seconds"] > IMPORT_S:
            missed.append(f"SQLite import {imp['seconds']:.0f} s > {IMPORT_S} s")
        if imp["peak_mb"] > PEAK_MB:
            missed.append(f"SQLite import peak RSS {imp['peak_mb']:.0f} MB > {PEAK_MB} MB")
        if imp["lock_wait_s"] > LOCK_S:
            missed.append(f"a writer waited {imp['lock_wait_s']:.2f} s > {LOCK_S} s")
    if lite and pg:
        for what in ("import", "reimport"):
            ratio = pg[what]["seconds"] / lite[what]["seconds"]
            print(f"{what}: PostgreSQL / SQLite = {ratio:.2f}")
            if ratio > RATIO:
                missed.append(f"PostgreSQL {what} {ratio:.2f}x SQLite > {RATIO}x")
        for name, f in lite["segments"].items():
            if pg["segments"][name]["members"] != f["members"]:
                missed.append(f"segment {name}: SQLite {f['members']} members, PostgreSQL "
                              f"{pg['segments'][name]['members']}")
    for label, result in results.items():
        for name, f in result["segments"].items():
            worst = max(f["count_s"] + f["snapshot_s"])
            if not name.startswith("(") and worst > SEGMENT_S:
                missed.append(f"{label} segment {name} {worst:.2f} s > {SEGMENT_S} s")
    return missed if rows >= FULL else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int,
                        default=int(os.environ.get("NEWSLETTER_BENCH_ROWS", "100000")))
    parser.add_argument("--postgres", default=os.environ.get(
        "NEWSLETTER_BENCH_POSTGRES_URL", os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")))
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--keep", action="store_true", help="keep bench/.data afterwards")
    parser.add_argument("--imports-only", action="store_true",
                        help="import and re-import only (no engagement, no segments)")
    args = parser.parse_args()

    data = HERE / ".data" / "audience"
    shutil.rmtree(data, ignore_errors=True)
    (data / "subscribers").mkdir(parents=True)
    (data / "subscribers" / "segments.yaml").write_text(
        yaml.safe_dump({"segments": SEGMENTS}, sort_keys=False), encoding="utf-8")
    csv_path = data / "subscribers.csv"
    started = time.perf_counter()
    generate(csv_path, args.rows)
    print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - started:.1f} s; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    results: dict[str, dict] = {}
    if args.only in (None, "sqlite"):
        url = f"sqlite:///{data / 'newsletter.db'}"
        results["sqlite"] = run("sqlite", url, data, csv_path, args.rows,
                                not args.imports_only)
    if args.only in (None, "postgresql"):
        if args.postgres:
            try:
                results["postgresql"] = run("postgresql", fresh_postgres(args.postgres), data,
                                            csv_path, args.rows, not args.imports_only)
            finally:
                if not args.keep:
                    drop_postgres(args.postgres)
                else:
                    print(f"kept PostgreSQL database {BENCH_DB}")
        else:
            print("\n== postgresql: skipped (set NEWSLETTER_BENCH_POSTGRES_URL)")
    print(f"\nload average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    missed = verdicts(results, args.rows)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    if missed:
        sys.exit("target missed: " + "; ".join(missed))
    if args.rows >= FULL:
        print(f"targets met ({args.rows:,} rows)")


if __name__ == "__main__":
    main()
