"""Webhook benchmark: post 100,000 signed SendGrid events to `newsletter serve` on 127.0.0.1.

Sets up a throwaway publication (20,000 subscribers, one send in the ledger) on a fresh SQLite
database (or --database-url), starts `newsletter serve` as a child process with a generated
ECDSA key pair, and posts the events in signed batches of 1,000 from --clients concurrent
connections, as SendGrid does. Opens and clicks carry their detail (user agent, IP, some opens
`sg_machine_open`), so every batch goes through the human-or-machine verdicts. Then it checks
that every event was applied exactly once (event rows, machine opens, engagement counters and
subscriber statuses against what was generated), replays some
batches to show they are recognised as duplicates, and prints events per second.
Target on SQLite: >= 10,000 events/s (docs/performance.md). Usage:

    python bench/webhooks.py [--events N] [--batch N] [--clients N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from newsletter.db import open_database  # noqa: E402
from newsletter.db.ledger_tables import sends  # noqa: E402
from newsletter.db.tables import (  # noqa: E402
    ENGAGEMENT_COUNTERS,
    engagement,
    subscribers,
    webhook_events,
)
from newsletter.events.policy import SoftBounceLimit, stored  # noqa: E402
from newsletter.providers.sendgrid.signature import (  # noqa: E402
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    public_key_text,
    sign,
)
from newsletter.providers.sendgrid.webhook import parse_event  # noqa: E402

TARGET_EPS = 10_000
SUBSCRIBERS = 20_000
#: engagement events and their share; status events go to addresses of their own
MIX = [("delivered", 30), ("open", 35), ("click", 14), ("deferred", 6), ("processed", 5),
       ("bounce", 2), ("blocked", 1), ("dropped", 1), ("spamreport", 2), ("unsubscribe", 2),
       ("group_unsubscribe", 2)]
STATUS_OF = {"bounce": "bounced", "dropped": "bounced", "spamreport": "complained",
             "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup(database_url: str) -> int:
    """Subscribers and one send; returns the send id."""
    engine = open_database(database_url)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    rows = [{"email": f"reader{n}@example.org", "email_key": f"reader{n}@example.org",
             "name": f"Reader {n}", "status": "active", "attributes": {}, "source": "bench",
             "created_at": now, "updated_at": now, "status_changed_at": now}
            for n in range(SUBSCRIBERS)]
    with engine.begin() as conn:
        conn.execute(insert(subscribers), rows)
        send_id = conn.execute(insert(sends).values(
            issue="bench", segment="everyone", transport="sendgrid", content_hash="0" * 64,
            subject="Bench", state="completed", total=SUBSCRIBERS, accepted=SUBSCRIBERS,
            failed=0, unknown=0, batches=SUBSCRIBERS // 1000, created_at=now,
            updated_at=now).returning(sends.c.id)).scalar_one()
    engine.dispose()
    return send_id


def generate(count: int, send_id: int, seed: int = 7) -> tuple[list[dict], dict]:
    """The events, and what applying them exactly once must produce."""
    rng = random.Random(seed)
    kinds = [k for k, share in MIX for _ in range(share)]
    now = int(time.time())
    events, counters, statuses, soft = [], Counter(), {}, Counter()
    retiring = iter(range(SUBSCRIBERS // 2, SUBSCRIBERS))  # one status event per address
    for n in range(count):
        kind = rng.choice(kinds)
        if kind in STATUS_OF:
            who = next(retiring, None)
            if who is None:
                kind = "delivered"
        if kind not in STATUS_OF:
            who = rng.randrange(SUBSCRIBERS // 2)
        email = f"reader{who}@example.org"
        item = {"email": email, "event": kind, "sg_event_id": f"bench-{seed}-{n:07d}",
                "sg_message_id": f"m{who}.filter0001", "timestamp": now - rng.randrange(60),
                "smtp-id": f"<m{who}@ismtpd>", "category": ["weekly"], "nl_issue": "bench",
                "nl_send": str(send_id), "nl_recipient": str(who + 1)}
        if kind == "bounce":
            item.update(type="bounce", reason="550 5.1.1 unknown user", status="5.1.1")
        elif kind == "blocked":
            item.update(event="bounce", type="blocked", reason="451 try later")
        elif kind == "dropped":
            item.update(reason="Bounced Address")
        elif kind == "click":
            item.update(url="https://example.org/report", ip=f"198.51.100.{who % 250}",
                        useragent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0")
        elif kind == "open":  # with the detail SendGrid sends; some machine-made (Apple MPP)
            machine = rng.random() < 0.4
            item.update(sg_machine_open=machine, ip=f"203.0.113.{who % 250}",
                        useragent="Mozilla/5.0" if machine else "Mozilla/5.0 (iPhone) Mobile")
            counters["machine_opens"] += machine
        events.append(item)
        counter = stored(parse_event(item))[1]
        if counter:
            counters[counter] += 1
        if kind in STATUS_OF:
            statuses[email] = STATUS_OF[kind]
        soft[email] += kind == "blocked"
    # the one policy: the third soft bounce within the window (all of these are) retires
    statuses.update({email: "bounced" for email, n in soft.items()
                     if n >= SoftBounceLimit().count})
    return events, {"counters": counters, "statuses": statuses}


def post_all(url: str, key: ec.EllipticCurvePrivateKey, bodies: list[bytes],
             clients: int) -> tuple[float, Counter]:
    """Post signed bodies from `clients` connections; (seconds, summed answers)."""
    stamp = str(int(time.time()))
    signed = [(b, {SIGNATURE_HEADER: sign(key, stamp, b), TIMESTAMP_HEADER: stamp,
                   "Content-Type": "application/json"}) for b in bodies]
    totals: Counter = Counter()

    def worker(part: list[tuple[bytes, dict]]) -> Counter:
        found: Counter = Counter()
        with httpx.Client(timeout=60) as client:
            for body, headers in part:
                answer = client.post(url, content=body, headers=headers)
                answer.raise_for_status()
                found.update(answer.json())
        return found

    parts = [signed[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for found in pool.map(worker, parts):
            totals.update(found)
    return time.perf_counter() - start, totals


def check(database_url: str, expected: dict, count: int) -> list[str]:
    """Differences between the database and exactly-once application ([] when none)."""
    engine = open_database(database_url)
    problems = []
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(webhook_events)).scalar_one()
        machine_opens = conn.execute(select(func.count()).select_from(webhook_events).where(
            webhook_events.c.event == "open", webhook_events.c.machine.is_(True))).scalar_one()
        sums = conn.execute(select(*(func.coalesce(func.sum(engagement.c[c]), 0)
                                     for c in ENGAGEMENT_COUNTERS))).one()
        changed = dict(conn.execute(select(subscribers.c.email_key, subscribers.c.status)
                                    .where(subscribers.c.status != "active")).all())
    engine.dispose()
    if stored != count:
        problems.append(f"{stored:,} events stored, expected {count:,}")
    if machine_opens != expected["counters"]["machine_opens"]:
        problems.append(f"{machine_opens:,} machine opens, expected "
                        f"{expected['counters']['machine_opens']:,}")
    got = {c: int(v) for c, v in zip(ENGAGEMENT_COUNTERS, sums, strict=True)}
    want = {c: expected["counters"].get(c, 0) for c in ENGAGEMENT_COUNTERS}
    if got != want:
        problems.append(f"engagement counters {got} != expected {want}")
    if changed != expected["statuses"]:
        problems.append(f"{len(changed):,} statuses changed, expected "
                        f"{len(expected['statuses']):,}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="newsletter-bench-webhooks-"))
    pub = work / "pub"
    pub.mkdir()
    shutil.copy(ROOT / "newsletter.yaml", pub / "newsletter.yaml")
    database_url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    key = ec.generate_private_key(ec.SECP256R1())
    port = free_port()
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT),
           "NEWSLETTER_SECRET": "bench-secret-of-at-least-32-characters",
           "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_text(key)}
    server = None
    try:
        send_id = setup(database_url)
        events, expected = generate(args.events, send_id)
        bodies = [json.dumps(events[i : i + args.batch]).encode()
                  for i in range(0, len(events), args.batch)]
        server = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "-C", str(pub), "serve", "--port", str(port),
             "--log-level", "warning"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{base}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        rss_before = peak_rss_mb(server.pid)
        oversized = chunked_oversize(port, key, 50)
        rss_after = peak_rss_mb(server.pid)
        seconds, totals = post_all(f"{base}/webhooks/sendgrid", key, bodies, args.clients)
        replay_s, replay = post_all(f"{base}/webhooks/sendgrid", key, bodies[:10], args.clients)
        problems = check(database_url, expected, args.events)
        if totals["applied"] != args.events or totals["duplicates"] or totals["ignored"]:
            problems.append(f"server answered {dict(totals)}")
        replayed = sum(len(json.loads(b)) for b in bodies[:10])
        if replay["applied"] or replay["duplicates"] != replayed:
            problems.append(f"replay answered {dict(replay)}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    rate = args.events / seconds
    backend = database_url.split(":", 1)[0]
    print(f"{args.events:,} events in {len(bodies)} signed batches of {args.batch:,} "
          f"({args.clients} clients, {backend}): {seconds:.2f} s, {rate:,.0f} events/s "
          f"(target >= {TARGET_EPS:,})")
    print(f"applied once each: {totals['applied']:,} applied, {totals['status_changes']:,} "
          f"status changes; replay of {replayed:,}: {replay['duplicates']:,} duplicates, "
          f"{replay['applied']} applied ({replay_s:.2f} s)")
    print(f"chunked 50 MB body with fresh signature headers: answered {oversized[0]} after "
          f"{oversized[1]:.1f} MB sent; serve peak RSS {rss_before:.1f} MB before, "
          f"{rss_after:.1f} MB after (limit 100 MB)")
    if not oversized[0].startswith("413") or rss_after >= 100:
        problems.append("the oversized chunked body was not refused within 100 MB")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems or (backend == "sqlite" and rate < TARGET_EPS):
        sys.exit(1)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def chunked_oversize(port: int, key: ec.EllipticCurvePrivateKey, megabytes: int
                     ) -> tuple[str, float]:
    """Stream a chunked body of `megabytes` with fresh (non-matching) signature headers; return
    the status line and how many MB went out before the server answered."""
    import select as select_module

    stamp = str(int(time.time()))
    head = (f"POST /webhooks/sendgrid HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"{SIGNATURE_HEADER}: {sign(key, stamp, b'[]')}\r\n{TIMESTAMP_HEADER}: {stamp}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b" " * 65536
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            while sent < megabytes * 2**20 and not answer:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                if select_module.select([sock], [], [], 0)[0]:
                    answer = sock.recv(4096)
            if not answer:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        if not answer:
            answer = sock.recv(4096)
    return answer.split(b"\r\n", 1)[0].decode(errors="replace").removeprefix("HTTP/1.1 "), \
        sent / 2**20


if __name__ == "__main__":
    main()
