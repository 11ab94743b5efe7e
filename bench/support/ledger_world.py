"""The ledger benchmark's world and instruments (bench/ledger.py): its own PostgreSQL
database, a publication with two independent issues, subscribers filled in bulk, the CPU of
processes on this machine, a watch over PostgreSQL's sessions, and a quiet fake SendGrid."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from dispatch import Fake
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from newsletter.db import open_database

ROOT = Path(__file__).resolve().parents[2]
FIRST, SECOND = "2026-11-24", "2026-12-01"
#: the bench's own database on the server (NEWSLETTER_BENCH_DB: another name, so that two
#: benches can run on one server side by side)
BENCH_DB = os.environ.get("NEWSLETTER_BENCH_DB", "newsletter_bench_ledger")


def postgres_database(admin: str, create: bool) -> str:
    """(Re)create the bench's own database on the server (or only drop it); its URL."""
    url = make_url(admin).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        drop_database(conn, BENCH_DB)
        if create:
            conn.execute(text(f"CREATE DATABASE {BENCH_DB}"))
    engine.dispose()
    return url.set(database=BENCH_DB).render_as_string(hide_password=False)


def drop_database(conn: Connection, name: str) -> None:
    """DROP DATABASE `name` if it exists (on an AUTOCOMMIT connection to another one)."""
    tries = 900  # FORCE may not end an autovacuum worker (the server's own role): the bench's
    for attempt in range(tries):  # role then waits for it to finish (after a 1M run, over a
        try:                      # minute: vacuumed() waits as long)
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            return
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) != "42501" or attempt == tries - 1:
                raise
            time.sleep(1)


def publication(folder: Path) -> Path:
    """The sample publication with a second, independent issue (a week later)."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", folder / "newsletter.yaml")
    shutil.copytree(ROOT / "issues" / FIRST, folder / "issues" / FIRST)
    shutil.copytree(ROOT / "issues" / FIRST, folder / "issues" / SECOND)
    manifest = folder / "issues" / SECOND / "issue.yaml"
    manifest.write_text(manifest.read_text("utf-8").replace(f"date: {FIRST}", f"date: {SECOND}")
                        .replace('subject: "', 'subject: "A week on: '), "utf-8")
    (folder / "subscribers").mkdir()
    (folder / "subscribers" / "segments.yaml").write_text("segments:\n  everyone: {}\n")
    return folder


def fill(url: str, people: int, first: int = 0) -> float:
    """The schema and `people` active subscribers (COPY on PostgreSQL), numbered from `first`
    (more of them join a world filled before); seconds taken."""
    open_database(url).dispose()
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    attrs = json.dumps({"role": "press", "country": "US"})
    rows = ((f"reader{n:07d}@example.com", f"reader{n:07d}@example.com", f"Reader {n}",
             "active", attrs, "bench", now, now, now) for n in range(first, first + people))
    columns = ("email, email_key, name, status, attributes, source, created_at, updated_at, "
               "status_changed_at")
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        con.executemany(f"INSERT INTO subscribers ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows)
        con.commit()
        con.close()
    else:
        engine = create_engine(url)
        with engine.begin() as conn:
            with conn.connection.driver_connection.cursor().copy(
                    f"COPY subscribers ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE subscribers"))
        engine.dispose()
    return time.perf_counter() - started


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of a process on this machine so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: The watcher's sampling interval. Each sample is a query and a read of every session's
#: /proc entry: every 25 ms that cost 0.33 s of this process's CPU per 10 s, and 0.45 s of the
#: server's statement time over a 1M send, taken from the two cores the send runs on, on
#: PostgreSQL alone (docs/performance.md, "The send at 1M, fifth pass").
WATCH_EVERY = 0.1


class Watch(threading.Thread):
    """PostgreSQL: every WATCH_EVERY s, which of the database's sessions wait for a lock, and
    the CPU each of its sessions' server processes used so far (the sum is the server's share of the
    work; autovacuum's workers are not counted). Also the server's write-ahead log written
    meanwhile, the share of it that is full-page images, and its checkpoints (these three are
    the whole server's: meaningful when nothing else runs on it)."""

    WAL = text("SELECT w.wal_bytes, w.wal_fpi, w.wal_records, "
               "b.checkpoints_timed + b.checkpoints_req FROM pg_stat_wal w, pg_stat_bgwriter b")

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.engine = create_engine(url)
        self.stop, self.samples, self.waiting, self.most = threading.Event(), 0, 0, 0
        with self.engine.connect() as conn:  # the CPU its processes had used before
            self.before = {pid: cpu_of(pid) for pid in conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()").scalars()}
            self.wal_before = conn.execute(self.WAL).one()
        self.cpu = dict(self.before)
        self.start()

    def run(self) -> None:
        query = text("SELECT pid, wait_event_type = 'Lock' FROM pg_stat_activity "
                     "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                     "AND backend_type = 'client backend'")
        with self.engine.connect() as conn:
            while not self.stop.wait(WATCH_EVERY):
                rows = conn.execute(query).all()
                conn.rollback()
                for pid, _ in rows:
                    self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_of(pid))
                waiting = sum(1 for _, locked in rows if locked)
                self.samples += 1
                self.waiting += bool(waiting)
                self.most = max(self.most, waiting)

    def finish(self) -> tuple[float, str]:
        """(server CPU seconds, the lock waits seen)."""
        self.stop.set()
        self.join()
        with self.engine.connect() as conn:
            after = conn.execute(self.WAL).one()
        self.engine.dispose()
        wal, fpi, records, checkpoints = (float(a - b) for a, b in zip(after, self.wal_before,
                                                                        strict=True))
        return sum(cpu - self.before.get(pid, 0.0) for pid, cpu in self.cpu.items()), (
            f"a session waited for a lock in {self.waiting} of {self.samples} samples (at "
            f"most {self.most} at once); WAL {wal / 2**20:,.0f} MB, full-page images "
            f"{fpi / max(records, 1):.1%} of {records:,.0f} records, {checkpoints:.0f} "
            "checkpoints")


SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression",
            "synchronous_commit")


def server_settings(url: str) -> str:
    """PostgreSQL: the server settings the figures depend on most, for the bench's output."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, setting, unit FROM pg_settings "
                                 "WHERE name = ANY(:names)"), {"names": list(SETTINGS)}).all()
    engine.dispose()
    shown = {name: _setting(value, unit) for name, value, unit in rows}
    return ", ".join(f"{name} {shown[name]}" for name in SETTINGS if name in shown)


def _setting(value: str, unit: str | None) -> str:
    """pg_settings' value in its unit (8kB pages, MB, s) as a person writes it."""
    if unit in ("8kB", "MB", "kB") and value.isdigit():
        size = int(value) * {"8kB": 8192, "MB": 2**20, "kB": 1024}[unit]
        return f"{size / 2**30:g}GB" if size >= 2**30 else f"{size / 2**20:g}MB"
    return f"{value}{unit or ''}"


def vacuumed(url: str, limit: float = 900.0) -> float:
    """PostgreSQL: wait until no autovacuum worker is busy in the database (the ledger's
    updates and the events leave it work); the seconds waited."""
    if not url.startswith("postgresql"):
        return 0.0
    engine = create_engine(url)
    started = time.perf_counter()
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND backend_type = 'autovacuum worker'")
    with engine.connect() as conn:
        while conn.execute(query).scalar_one() and time.perf_counter() - started < limit:
            conn.rollback()
            time.sleep(0.5)
    engine.dispose()
    return time.perf_counter() - started


def finished(proc: subprocess.Popen) -> tuple[str, float]:
    """Wait for `proc`; (its output, its CPU seconds and its children's)."""
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, usage.ru_utime + usage.ru_stime


class QuietFake(Fake):
    """The fake SendGrid, its complaints about a killed client's connection left unprinted."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_sendgrid", "--count-only", "--instant"], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
