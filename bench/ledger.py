"""Ledger benchmark on SQLite and PostgreSQL, side by side: sends at scale, a kill and its
resume, webhook ingest and tracked-link redirects over a ledger of two sends (issue 31).

On each database in turn, with N fictional subscribers: (1) the sample issue is sent to all
of them through SendGrid (the local fake, answering at once: it measures the sender), the real
`python -m newsletter send` in its own process; on PostgreSQL a sampler reads
pg_stat_activity every 25 ms and counts the ledger's sessions waiting for a lock; (2) a
second issue is sent, killed (SIGKILL) once about 40 % is accepted, its batches of unknown
fate settled as an operator would from the provider's log (accepted or resent, batch by
batch), and resumed; both sends must reach everyone exactly once. The ledger then holds 2N
rows. (3) `newsletter serve` takes signed SendGrid webhook batches of the second send's
events (opens, and clicks of people none of whose deliveries is stored: each click reads its
delivery time from the ledger) from 4 clients; (4) tracked-link redirects (GET /c/<token>
of the second send) are timed one after another; (5) 1,000 people join and the first issue is
sent again: it must go to them alone, its plan and snapshot leaving out the N people the issue
reached (issue 31: on PostgreSQL that ran past 3 minutes at 1M, quadratic in N).
The ledger table's size, and on PostgreSQL its share of in-place (HOT) updates, are printed
too.

Size: `--people`, else NEWSLETTER_BENCH_ROWS, else 100,000 (`NEWSLETTER_BENCH_ROWS=1000000
make bench` gives the figures in docs/performance.md). PostgreSQL: `--postgres URL`, else
NEWSLETTER_BENCH_POSTGRES_URL, else NEWSLETTER_TEST_POSTGRES_URL (a role that may CREATE
DATABASE). Targets, checked at 1,000,000 (exit status 1 when one is missed): the send on
PostgreSQL within 1.2x of SQLite's; webhook ingest >= 10,000 events/s and a redirect <= 10 ms
(median) on both, at 2M ledger rows. Exactly-once is checked at every size.

    python bench/ledger.py [--people N] [--postgres URL] [--only sqlite|postgresql]
                           [--events N] [--redirects N] [--keep] [--ingest-only DIR]

`--keep` leaves the world (the SQLite file in the printed folder, the PostgreSQL database
NEWSLETTER_BENCH_DB) behind; `--ingest-only DIR` then runs (3) and (4) alone on a copy of it,
its events, counters and last engagements removed first: old code against new, side by side,
without sending a million messages twice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from dispatch import API_KEY, SECRET, Fake  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from support.ledger_world import (  # noqa: E402
    BENCH_DB,
    FIRST,
    SECOND,
    QuietFake,
    Watch,
    cpu_of,
    drop_database,
    fill,
    finished,
    postgres_database,
    publication,
    server_settings,
    vacuumed,
)
from webhooks import free_port, post_all  # noqa: E402

from newsletter.core.tokens import link_token  # noqa: E402
from newsletter.db.ledger_tables import send_recipients, sends  # noqa: E402
from newsletter.db.tables import send_links, webhook_events  # noqa: E402
from newsletter.providers.sendgrid.signature import public_key_text  # noqa: E402

FULL = 1_000_000
RATIO, EVENTS_PER_S, REDIRECT_MS = 1.2, 10_000, 10.0  # targets at FULL
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1"


def newsletter(pub: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "newsletter", "-C", str(pub), *args], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def send_args(slug: str, *flags: str) -> list[str]:
    return ["send", slug, "--segment", "everyone", "--transport", "sendgrid", "--yes",
            "--skip-url-check", *flags]


def phase(url: str, slug: str) -> float:
    """Seconds from the send's creation (its snapshot included) to its completion."""
    engine = create_engine(url)
    with engine.connect() as conn:
        created, finished = conn.execute(select(sends.c.created_at, sends.c.finished_at)
                                         .where(sends.c.issue == slug)).one()
    engine.dispose()
    return (finished - created).total_seconds()


def fake_counts(fake: Fake, emails: list[str]) -> dict[str, int]:
    request = urllib.request.Request(f"{fake.url}/_fake/counts", data=json.dumps(emails).encode(),
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def once(stats: dict, people: int) -> bool:
    return stats["accepted"] == stats["unique"] == people and stats["duplicates"] == 0


def first_send(url: str, pub: Path, env: dict, people: int) -> dict:
    with Fake() as fake:
        watch = Watch(url) if url.startswith("postgresql") else None
        started = time.perf_counter()
        proc = newsletter(pub, {**env, "SENDGRID_API_URL": fake.url}, *send_args(FIRST))
        out, cpu = finished(proc)
        wall = time.perf_counter() - started
        server, locks = watch.finish() if watch else (0.0, "")
        stats = fake.stats()
    if proc.returncode != 0:
        sys.exit(f"the send failed:\n{out}")
    return {"wall_s": wall, "phase_s": phase(url, FIRST), "once": once(stats, people),
            "cpu_s": cpu, "server_cpu_s": server, "locks": locks}


def killed_and_resumed(url: str, pub: Path, env: dict, people: int) -> dict:
    """The second issue: killed at about 40 %, unknown batches settled, resumed."""
    engine = create_engine(url)
    with QuietFake() as fake:
        env = {**env, "SENDGRID_API_URL": fake.url, "PGAPPNAME": "bench-ledger-send"}
        proc = newsletter(pub, env, *send_args(SECOND))
        while proc.poll() is None and fake.stats()["accepted"] < people * 0.4:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        while engine.dialect.name == "postgresql":  # the dead process's sessions end
            with engine.connect() as conn:
                if not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE "
                                         "application_name = 'bench-ledger-send'")).scalar_one():
                    break
            time.sleep(0.05)
        with engine.connect() as conn:
            unknown = conn.execute(select(send_recipients.c.batch, send_recipients.c.email)
                                   .where(send_recipients.c.state == "unknown")).all()
            pending = conn.execute(select(func.count()).where(
                send_recipients.c.state == "pending")).scalar_one()
        batches: dict[int, list[str]] = {}
        for batch, email in unknown:
            batches.setdefault(batch, []).append(email)
        flags: list[str] = []
        for batch, emails in sorted(batches.items()):
            got = set(fake_counts(fake, emails).values())
            assert len(got) == 1, f"batch {batch} partly delivered: {got}"
            flags += ["--accept-batch" if got == {1} else "--resend-batch", str(batch)]
        started = time.perf_counter()
        resume = newsletter(pub, env, *send_args(SECOND, *flags))
        out, _ = finished(resume)
        wall = time.perf_counter() - started
        stats = fake.stats()
    engine.dispose()
    if resume.returncode != 0:
        sys.exit(f"the resume failed:\n{out}")
    return {"killed_with_pending": pending, "unknown_batches": len(batches),
            "resume_s": wall, "once": once(stats, people)}


def events_of(send_id: int, people: int, count: int, url_of_link: str) -> list[dict]:
    """Opens and clicks of the second send (clicks by people with no stored delivery) and
    some deliveries of others."""
    rng = random.Random(31)
    now = int(time.time())
    found = []
    for n in range(count):
        roll = rng.random()
        who = rng.randrange(people // 2) * 2 + (roll >= 0.25)  # deliveries: even people only
        item = {"email": f"reader{who:07d}@example.com", "sg_event_id": f"ledger-{n:08d}",
                "timestamp": now - rng.randrange(3600), "nl_issue": SECOND,
                "nl_send": str(send_id), "nl_recipient": "0", "sg_message_id": f"m{who}.f"}
        if roll < 0.25:
            item["event"] = "delivered"
        elif roll < 0.6:
            item.update(event="open", useragent=BROWSER, ip=f"203.0.113.{who % 250}")
        else:
            item.update(event="click", useragent=BROWSER, url=url_of_link,
                        ip=f"198.51.100.{who % 250}")
        found.append(item)
    return found


def serve_phase(url: str, pub: Path, env: dict, people: int, events: int,
                redirects: int) -> dict:
    """Webhook ingest, then redirects, against one `newsletter serve`."""
    engine = create_engine(url)
    with engine.connect() as conn:
        send_id = conn.execute(select(sends.c.id).where(sends.c.issue == SECOND)).scalar_one()
        ledger_rows = conn.execute(select(func.count()).select_from(send_recipients)).scalar()
        position, link = conn.execute(
            select(send_links.c.position, send_links.c.url).where(
                send_links.c.send_id == send_id, send_links.c.url.like("http%"))
            .order_by(send_links.c.position).limit(1)).one()
    key = ec.generate_private_key(ec.SECP256R1())
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-C", str(pub), "serve", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, stdout=subprocess.DEVNULL,
        env={**env, "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_text(key)})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        waited = vacuumed(url)
        generated = events_of(send_id, people, events, link)
        bodies = [json.dumps(generated[i : i + 1000]).encode()
                  for i in range(0, len(generated), 1000)]
        watch = Watch(url) if url.startswith("postgresql") else None
        cpu = cpu_of(server.pid)
        seconds, answers = post_all(f"{base}/webhooks/sendgrid", key, bodies, 4)
        ingest_cpu = cpu_of(server.pid) - cpu
        ingest_server = watch.finish()[0] if watch else 0.0
        tokens = [link_token(SECRET, send_id, position, f"reader{who:07d}@example.com")
                  for who in random.Random(7).sample(range(people), redirects + 20)
                  ] if redirects else []
        waited += vacuumed(url)
        took = []
        with httpx.Client(base_url=base, headers={"User-Agent": BROWSER}) as client:
            for n, token in enumerate(tokens):
                if n == 20:  # the first ones warm the server up
                    watch = Watch(url) if url.startswith("postgresql") else None
                    cpu = cpu_of(server.pid)
                started = time.perf_counter()
                answer = client.get(f"/c/{token}")
                if n >= 20:
                    took.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 302 and answer.headers["location"] == link
        redirect_cpu = cpu_of(server.pid) - cpu
        redirect_server = watch.finish()[0] if watch else 0.0
    finally:
        server.terminate()
        server.wait(30)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(webhook_events).where(
            webhook_events.c.send_id == send_id)).scalar_one()
    engine.dispose()
    took.sort()
    found = {"ledger_rows": ledger_rows, "events_per_s": events / seconds, "vacuum_s": waited,
             "ingest_cpu_ms": ingest_cpu * 1000 / events,
             "ingest_server_ms": ingest_server * 1000 / events,
             "events_once": answers["applied"] == events and stored == events + len(tokens)}
    if took:
        found.update(redirect_cpu_ms=redirect_cpu * 1000 / len(took),
                     redirect_server_ms=redirect_server * 1000 / len(took),
                     redirect_ms=statistics.median(took),
                     redirect_p95_ms=took[int(len(took) * .95)], redirect_max_ms=took[-1])
    return found


#: people who join between the first issue's send and its send again
JOINED = 1000


def sent_again(url: str, pub: Path, env: dict, people: int) -> dict:
    """The first issue sent again after JOINED people joined: to them alone."""
    fill(url, JOINED, first=people)
    with QuietFake() as fake:
        started = time.perf_counter()
        proc = newsletter(pub, {**env, "SENDGRID_API_URL": fake.url}, *send_args(FIRST))
        out, _ = finished(proc)
        wall = time.perf_counter() - started
        joined = [f"reader{n:07d}@example.com" for n in range(people, people + JOINED)]
        counts, stats = fake_counts(fake, joined), fake.stats()
    if proc.returncode != 0:
        sys.exit(f"the send again failed:\n{out}")
    newcomers = all(counts.get(email) == 1 for email in joined)
    return {"again_s": wall, "again_once": newcomers and stats["accepted"] == JOINED
            and stats["duplicates"] == 0}


def table_figures(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            upd, hot, size = conn.execute(text(
                "SELECT n_tup_upd, n_tup_hot_upd, pg_total_relation_size(relid) "
                "FROM pg_stat_user_tables WHERE relname = 'send_recipients'")).one()
            found = (f"send_recipients: {size / 1e6:.0f} MB with its indexes; {hot:,} of "
                     f"{upd:,} updates in place (HOT, {hot / max(upd, 1):.0%})")
        else:
            path = Path(url.removeprefix("sqlite:///"))
            found = (f"database file {path.stat().st_size / 1e6:.0f} MB (the subscribers "
                     "and the ledger)")
    engine.dispose()
    return found


def run(label: str, url: str, work: Path, args: argparse.Namespace) -> dict:
    print(f"\n== {label}, {args.people:,} people", flush=True)
    if url.startswith("postgresql"):
        print(f"server: {server_settings(url)}", flush=True)
    pub = publication(work / label)
    print(f"filled in {fill(url, args.people):.1f} s", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_SECRET": SECRET,
           "NEWSLETTER_DATABASE_URL": url, "SENDGRID_API_KEY": API_KEY}
    first = first_send(url, pub, env, args.people)
    server = f" + {first['server_cpu_s']:.1f} s server" if first["server_cpu_s"] else ""
    print(f"send: {first['wall_s']:.1f} s in all, {first['phase_s']:.1f} s from the snapshot "
          f"to the end ({args.people / first['phase_s']:,.0f}/s), CPU {first['cpu_s']:.1f} s"
          f"{server}; exactly once: {first['once']}; {first['locks'] or 'SQLite'}; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    if args.send_only:
        return first
    second = killed_and_resumed(url, pub, env, args.people)
    print(f"second send killed with {second['killed_with_pending']:,} pending, "
          f"{second['unknown_batches']} batches of unknown fate settled; resume "
          f"{second['resume_s']:.1f} s; exactly once: {second['once']}", flush=True)
    print(table_figures(url), flush=True)
    served = served_figures(url, pub, env, args)
    again = sent_again(url, pub, env, args.people)
    print(f"the first issue again, {JOINED:,} having joined: {again['again_s']:.1f} s in all "
          f"(plan, snapshot, send); to them alone, once: {again['again_once']}", flush=True)
    return {**first, **second, **served, **again}


def served_figures(url: str, pub: Path, env: dict, args: argparse.Namespace) -> dict:
    """The serve phase, its figures printed."""
    served = serve_phase(url, pub, env, args.people, args.events, args.redirects)
    if served["vacuum_s"] >= 1:
        print(f"(waited {served['vacuum_s']:.0f} s in all for autovacuum to finish before the "
              "ingest and before the redirects)")
    print(f"webhooks at {served['ledger_rows']:,} ledger rows: {served['events_per_s']:,.0f} "
          f"events/s (4 clients), CPU per event {served['ingest_cpu_ms']:.3f} ms serve + "
          f"{served['ingest_server_ms']:.3f} ms server; applied once: {served['events_once']}",
          flush=True)
    if "redirect_ms" in served:
        print(f"redirect: median {served['redirect_ms']:.1f} ms, p95 "
              f"{served['redirect_p95_ms']:.1f} ms, max {served['redirect_max_ms']:.1f} ms; CPU "
              f"each {served['redirect_cpu_ms']:.1f} ms serve + "
              f"{served['redirect_server_ms']:.1f} ms server", flush=True)
    print(f"load {os.getloadavg()[0]:.1f}", flush=True)
    return served


def ingest_again(label: str, url: str, work: Path, args: argparse.Namespace) -> dict:
    """The serve phase alone, on a copy of the world a `--keep` run left in `--ingest-only`
    (the SQLite file copied, the PostgreSQL database made from it as a template)."""
    kept = Path(args.ingest_only)
    print(f"\n== {label}, {args.people:,} people, the world of {kept}", flush=True)
    pub = work / label
    shutil.copytree(kept / label, pub)
    if label == "sqlite":
        for suffix in ("", "-wal"):
            if (kept / f"ledger.db{suffix}").exists():
                shutil.copy(kept / f"ledger.db{suffix}", work / f"ledger.db{suffix}")
    else:
        url = postgres_copy(args.postgres, url)
    without_events(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_SECRET": SECRET,
           "NEWSLETTER_DATABASE_URL": url, "SENDGRID_API_KEY": API_KEY}
    try:
        return served_figures(url, pub, env, args)
    finally:
        if label != "sqlite" and not args.keep:
            postgres_copy(args.postgres, url, drop_only=True)


def without_events(url: str) -> None:
    """The world as it was before its first serve phase: no events, engagement counts or
    last engagements (on PostgreSQL the tables compacted, as they were before)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM webhook_events"))
        conn.execute(text("DELETE FROM engagement"))
        conn.execute(text("UPDATE subscribers SET last_engaged_at = NULL "
                          "WHERE last_engaged_at IS NOT NULL"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM FULL ANALYZE webhook_events, engagement"))
            conn.execute(text("VACUUM ANALYZE subscribers"))
    engine.dispose()


def postgres_copy(admin: str, source: str, drop_only: bool = False) -> str:
    """A database made from the kept one (`source`) as its template; its URL."""
    name = f"{BENCH_DB}_again"
    engine = create_engine(make_url(admin).set(drivername="postgresql+psycopg"),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        drop_database(conn, name)
        if not drop_only:
            conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {BENCH_DB}"))
    engine.dispose()
    return make_url(source).set(database=name).render_as_string(hide_password=False)


def verdicts(results: dict[str, dict], people: int) -> list[str]:
    missed = [f"{label}: {what} not exactly once" for label, r in results.items()
              for what in ("once", "events_once", "again_once") if what in r and not r[what]]
    if people < FULL:
        return missed
    lite, pg = results.get("sqlite"), results.get("postgresql")
    if lite and pg and "phase_s" in pg and pg["phase_s"] > RATIO * lite["phase_s"]:
        missed.append(f"send on PostgreSQL {pg['phase_s'] / lite['phase_s']:.2f}x SQLite's")
    for label, r in results.items():
        if "events_per_s" not in r:
            continue
        if r["events_per_s"] < EVENTS_PER_S:
            missed.append(f"{label} webhooks {r['events_per_s']:,.0f}/s < {EVENTS_PER_S:,}")
        if r.get("redirect_ms", 0) > REDIRECT_MS:
            missed.append(f"{label} redirect {r['redirect_ms']:.1f} ms > {REDIRECT_MS} ms")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int,
                        default=int(os.environ.get("NEWSLETTER_BENCH_ROWS", "100000")))
    parser.add_argument("--postgres", default=os.environ.get(
        "NEWSLETTER_BENCH_POSTGRES_URL", os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")))
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--redirects", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--send-only", action="store_true",
                        help="only the first send (no kill, resume, webhooks or redirects)")
    parser.add_argument("--ingest-only", metavar="DIR",
                        help="only the webhooks and redirects, on a copy of the world a --keep "
                             "run left in DIR (same --people and NEWSLETTER_BENCH_DB)")
    args = parser.parse_args()
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="newsletter-bench-ledger-"))
    if args.keep:
        print(f"kept in {work}", flush=True)
    results: dict[str, dict] = {}
    try:
        if args.ingest_only:
            kept = make_url(args.postgres or "postgresql://").set(
                drivername="postgresql+psycopg", database=BENCH_DB)
            worlds = [("sqlite", f"sqlite:///{work / 'ledger.db'}"),
                      ("postgresql", kept.render_as_string(hide_password=False))]
            for label, url in worlds:
                if args.only in (None, label) and (Path(args.ingest_only) / label).exists():
                    results[label] = ingest_again(label, url, work, args)
        if args.only in (None, "sqlite") and not args.ingest_only:
            results["sqlite"] = run("sqlite", f"sqlite:///{work / 'ledger.db'}", work, args)
        if args.only in (None, "postgresql") and args.postgres and not args.ingest_only:
            try:
                results["postgresql"] = run(
                    "postgresql", postgres_database(args.postgres, True), work, args)
            finally:
                if not args.keep:
                    postgres_database(args.postgres, False)
        elif args.only != "sqlite" and not args.ingest_only:
            print("\n== postgresql: skipped (set NEWSLETTER_BENCH_POSTGRES_URL)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    lite, pg = results.get("sqlite"), results.get("postgresql")
    if lite and pg and "phase_s" in lite and "phase_s" in pg:
        resume = (f"; resume {pg['resume_s'] / lite['resume_s']:.2f}" if "resume_s" in pg
                  else "")
        print(f"\nsend: PostgreSQL / SQLite = {pg['phase_s'] / lite['phase_s']:.2f}{resume}")
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    missed = verdicts(results, args.people)
    if missed:
        sys.exit("target missed: " + "; ".join(missed))
    if args.people >= FULL:
        print(f"targets met ({args.people:,} people)")


if __name__ == "__main__":
    main()
