"""Dispatch benchmark: 1,000,000 subscribers through SendGrid (a local fake), 20,000 to the outbox.

Targets (docs/performance.md, "Dispatch"):

- against an instant stand-in, the SendGrid send of 1M recipients takes at most 1.5 times as
  long as a minimal client run in the same bench against the same stand-in, with a peak RSS of
  at most 150 MB. The minimal client is below (`minimal_client`): it reads the subscribers
  with sqlite3, signs the same two HMAC tokens per recipient (unsubscribe and preferences
  links), builds the same request bodies (checked equal to the send's), serialises them with
  the standard json module and posts them one after another over one keep-alive connection;
- against a stand-in answering each request after 300 ms (as real requests of 1000
  personalizations and a 40 KB body do), at least 20,000 recipients/s, i.e. 1M in under a
  minute (over --latency-subscribers, default 200,000: once grown, the rate is steady);
- the outbox: at least 1,000 messages per second.

Each send is the real `python -m newsletter send` in its own process (CPU and peak RSS from
wait4); the fake SendGrid server runs in another process, validates every request like
SendGrid and counts deliveries, so exactly-once is checked too.

    python bench/dispatch.py [--subscribers 1000000] [--latency-subscribers 200000]
                             [--outbox 20000]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hmac
import html
import http.client
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2026-11-24"
RATIO_LIMIT, RSS_LIMIT_MB, LATENCY_MIN_RATE, OUTBOX_MIN_RATE = 1.5, 150.0, 20_000.0, 1000.0
SECRET = "bench-secret-of-at-least-32-characters"
API_KEY = "SG.fake-test-key"
LATENCY_S = 0.3


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


def _own_peak(pid: int) -> float:
    """The process's own peak RSS so far (VmHWM, MB): wait4's ru_maxrss also counts the
    children it waited for (SpamAssassin, run by the pre-send checks)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def send(pub: Path, env: dict[str, str], transport: str) -> tuple[float, float, float, float]:
    """Run `newsletter send`; returns (wall seconds, peak RSS in MB of the process itself,
    CPU seconds and ru_maxrss in MB, both of it and the children it waited for)."""
    args = [sys.executable, "-m", "newsletter", "-C", str(pub), "send", SLUG, "--segment",
            "everyone", "--transport", transport, "--yes", "--skip-url-check"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = 0.0
        while True:
            peak = max(peak, _own_peak(proc.pid))  # before the reap: /proc still has it
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"newsletter send failed:\n{text}")
    return wall, peak, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def send_phase(db_url: str) -> float:
    """Seconds from the send's creation (snapshot included) to its completion."""
    con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    created, finished = con.execute("SELECT created_at, finished_at FROM sends").fetchone()
    con.close()
    took = dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(created)
    return took.total_seconds()


class Fake:
    """The fake SendGrid in its own process."""

    def __init__(self, *options: str):
        args = ["--count-only", "--instant", *options]
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fake_sendgrid", *args],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/_fake/stats",
                                         headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    def __enter__(self) -> Fake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait()


# -- the minimal client ----------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _link(public_url: str, key: bytes, purpose: str, email: str) -> str:
    """A signed link, in the product's token format (newsletter.core.tokens)."""
    payload = json.dumps([purpose, email.lower(), 0, 0], ensure_ascii=False,
                         separators=(",", ":")).encode()
    mac = hmac.digest(key, b"newsletter-token-2\0" + purpose.encode() + b"\0" + payload,
                      "sha256")[:20]
    return f"{public_url.rstrip('/')}/{purpose}/2.{_b64(payload)}.{_b64(mac)}"


def _person(row: tuple[int, str, str], keys: list[tuple[str, str, str]], public_url: str,
            key: bytes) -> dict:
    """One personalization, as the send builds it for the sample issue's placeholders."""
    rid, email, name = row
    values = {"email": email, "first_name": name.split(" ")[0] if name else "",
              "unsubscribe_url": _link(public_url, key, "unsubscribe", email),
              "preferences_url": _link(public_url, key, "preferences", email)}
    substitutions = {}
    for field, fallback, kind in keys:
        value = values[field] or fallback
        substitutions[f"%%{kind}:{field}{'|' + fallback if fallback else ''}%%"] = (
            html.escape(value) if kind == "html" else value)
    return {"to": [{"email": email, "name": name}],
            "headers": {"List-Unsubscribe": f"<{values['unsubscribe_url']}>",
                        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            "custom_args": {"nl_recipient": str(rid)}, "substitutions": substitutions}


def minimal_client(db_path: str, url: str, base: dict, keys: list[tuple[str, str, str]],
                   public_url: str, limit: int | None = None) -> list[dict] | None:
    """Send every subscriber as 1000-personalization requests over one keep-alive connection.
    With `limit`, build the first `limit` personalizations and return them instead."""
    key = SECRET.encode()
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT id, email, name FROM subscribers ORDER BY id")
    host, port = url.removeprefix("http://").split(":")
    http_conn = http.client.HTTPConnection(host, int(port))
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    try:
        while batch := rows.fetchmany(limit or 1000):
            people = [_person(row, keys, public_url, key) for row in batch]
            if limit:
                return people
            http_conn.request("POST", "/v3/mail/send",
                              json.dumps({**base, "personalizations": people}).encode(), headers)
            answer = http_conn.getresponse()
            answer.read()
            if answer.status != 202:
                raise SystemExit(f"the minimal client got {answer.status}")
    finally:
        http_conn.close()
        con.close()
    return None


def request_shape(pub: Path, db_path: str) -> tuple[dict, list[tuple[str, str, str]], str, bool]:
    """The send's shared body and placeholders, and whether the minimal client builds the
    same personalizations as the send's own builder."""
    os.environ.update({"NEWSLETTER_SECRET": SECRET})
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication
    from newsletter.core.personalise import Recipient
    from newsletter.dispatch.artifact import Artifact
    from newsletter.providers.mailing import Item
    from newsletter.providers.sendgrid.payload import PayloadBuilder

    publication = Publication.load(pub)
    build = build_issue(publication, SLUG)
    mailing = Artifact.freeze(publication, build, (SLUG,)).mailing(publication.config, "1",
                                                                   secret=SECRET)
    builder = PayloadBuilder(mailing)
    keys = []
    for k in builder.keys:
        field, _, fallback = k.placeholder[2:-2].partition("|")
        keys += [(field, fallback, "html")] if k.html_key else []
        keys += [(field, fallback, "text")] if k.text_key else []
    public_url = publication.config.public_url
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT id, email, name FROM subscribers ORDER BY id LIMIT 1000").fetchall()
    con.close()
    ours = builder.body([Item(r[0], Recipient(r[1], r[2])) for r in rows])[0]["personalizations"]
    theirs = minimal_client(db_path, "http://127.0.0.1:1", {}, keys, public_url, limit=1000)
    return builder.base, keys, public_url, ours == theirs


def sendgrid_run(work: Path, name: str, count: int, base_env: dict[str, str],
                 *fake_options: str) -> dict[str, Any]:
    """Fill a publication with `count` subscribers and send it to a fake SendGrid."""
    pub = publication(work / name)
    db = f"sqlite:///{pub / '.newsletter' / 'newsletter.db'}"
    print(f"filling {count:,} subscribers ...", flush=True)
    fill_s = fill(db, count)
    with Fake(*fake_options) as fake:
        env = {**base_env, "NEWSLETTER_DATABASE_URL": db, "SENDGRID_API_URL": fake.url,
               "SENDGRID_API_KEY": API_KEY}
        print(f"sending {count:,} through sendgrid ({name}) ...", flush=True)
        wall, rss, cpu, maxrss = send(pub, env, "sendgrid")
        stats = fake.stats()
    phase = send_phase(db)
    return {"recipients": count, "fill_s": round(fill_s, 1), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "send_phase_s": round(phase, 1),
            "rate_per_s": round(count / phase), "peak_rss_mb": round(rss, 1),
            "ru_maxrss_with_children_mb": round(maxrss, 1),
            "requests": stats["requests"], "peak_in_flight": stats["peak"],
            "exactly_once": stats["accepted"] == count and stats["unique"] == count
            and stats["duplicates"] == 0, "pub": pub, "db": db}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--latency-subscribers", type=int, default=200_000)
    parser.add_argument("--outbox", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="newsletter-bench-dispatch-"))
    base_env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_SECRET": SECRET}
    results: dict[str, dict[str, Any]] = {}
    try:
        # -- SendGrid, instant stand-in: the send, then the minimal client -----------------
        sg = sendgrid_run(work, "sg", args.subscribers, base_env)
        db_path = str(sg.pop("db")).removeprefix("sqlite:///")
        base, keys, public_url, same = request_shape(sg.pop("pub"), db_path)
        base = {**base, "custom_args": {**base["custom_args"], "nl_send": "1"}}
        with Fake("--keep-alive") as fake:
            print(f"sending {args.subscribers:,} with the minimal client ...", flush=True)
            started, cpu = time.perf_counter(), time.process_time()
            minimal_client(db_path, fake.url, base, keys, public_url)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            stats = fake.stats()
        sg["ratio_to_minimal"] = round(sg["wall_s"] / wall, 2)
        results["sendgrid"] = sg
        results["minimal_client"] = {
            "recipients": args.subscribers, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "requests": stats["requests"], "same_request_bodies": same,
            "exactly_once": stats["accepted"] == args.subscribers
            and stats["unique"] == args.subscribers}
        # -- SendGrid, 300 ms per request ------------------------------------------------------
        slow = sendgrid_run(work, "sg-latency", args.latency_subscribers, base_env,
                            "--delay", str(LATENCY_S))
        slow.pop("pub"), slow.pop("db")
        results["sendgrid_300ms"] = slow
        # -- outbox: 20,000 .eml files -------------------------------------------------------
        pub = publication(work / "outbox")
        db = f"sqlite:///{pub / '.newsletter' / 'newsletter.db'}"
        fill(db, args.outbox)
        env = {**base_env, "NEWSLETTER_DATABASE_URL": db}
        print("sending to the outbox ...", flush=True)
        wall, rss, _, _ = send(pub, env, "outbox")
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
    sg, floor, slow, box = (results[k] for k in ("sendgrid", "minimal_client", "sendgrid_300ms",
                                                 "outbox"))
    checks = {
        f"sendgrid {sg['recipients']:,} <= {RATIO_LIMIT}x the minimal client "
        f"({sg['wall_s']} s / {floor['wall_s']} s)": sg["ratio_to_minimal"] <= RATIO_LIMIT,
        f"sendgrid peak RSS <= {RSS_LIMIT_MB:.0f} MB": sg["peak_rss_mb"] <= RSS_LIMIT_MB,
        "sendgrid exactly once": sg["exactly_once"] and slow["exactly_once"],
        "the minimal client sends the same bodies, once each": floor["same_request_bodies"]
        and floor["exactly_once"],
        f"sendgrid with {LATENCY_S * 1000:.0f} ms per request >= {LATENCY_MIN_RATE:,.0f}/s "
        f"over {slow['recipients']:,}": slow["rate_per_s"] >= LATENCY_MIN_RATE,
        f"outbox >= {OUTBOX_MIN_RATE:.0f} msg/s": box["rate_per_s"] >= OUTBOX_MIN_RATE,
        "outbox one file each": box["files"] == box["messages"],
    }
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    if args.subscribers == 1_000_000 and not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
