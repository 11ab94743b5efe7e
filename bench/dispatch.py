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
wait4 and /proc); the fake SendGrid server runs in another process, validates every request
like SendGrid and counts deliveries, so exactly-once is checked too. A SendGrid send of more
than one batch builds its request bodies in a child process (newsletter.providers.sendgrid.
bodies): its peak RSS is printed beside the sender's, with the peak of the two together
(sampled every 50 ms).

Every figure is printed with the load average of the machine (the bench's own processes
included): on a shared machine the figures move with it. `--baseline REV` also runs the 300 ms
send of the git revision REV (exported to a temporary folder, with its own code, schema and
sample issue) `--rounds` times alternately with this tree's, and prints each pair's ratio.

    python bench/dispatch.py [--subscribers 1000000] [--latency-subscribers 200000]
                             [--outbox 20000] [--baseline main [--rounds 2] [--only-baseline]]
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
#: in the command line of the child that builds a SendGrid send's request bodies
BUILDER = b"newsletter.providers.sendgrid.bodies"


def publication(folder: Path, tree: Path = ROOT) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(tree / "newsletter.yaml", folder / "newsletter.yaml")
    shutil.copytree(tree / "issues", folder / "issues")
    (folder / "subscribers").mkdir()
    (folder / "subscribers" / "segments.yaml").write_text("segments:\n  everyone: {}\n")
    return folder


def fill(db_url: str, count: int, tree: Path = ROOT) -> float:
    """Create the schema (of the code in `tree`) and `count` active subscribers; returns
    seconds taken."""
    if tree == ROOT:
        sys.path.insert(0, str(ROOT))
        from newsletter.db import open_database

        open_database(db_url).dispose()
    else:
        subprocess.run([sys.executable, "-c", "import sys; from newsletter.db import "
                        "open_database; open_database(sys.argv[1]).dispose()", db_url],
                       cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
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


def _status(pid: int | str, *fields: str) -> list[float]:
    """`fields` of /proc/PID/status in MB (0 when the process is gone)."""
    found = dict.fromkeys(fields, 0.0)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(":", 1)[0]
            if name in found:
                found[name] = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return list(found.values())


def _cpu(pid: int | str) -> float | None:
    """CPU seconds (user + system) of the process itself so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _body_builders(pid: int, known: dict[str, bool]) -> list[str]:
    """The children of `pid` that build SendGrid request bodies (`python -m
    newsletter.providers.sendgrid.bodies`), not SpamAssassin and the like."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for child in pids:
            if not known.get(child):  # asked again: between fork and exec a child still shows
                try:                  # its parent's command line
                    known[child] = BUILDER in Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
            if known[child]:
                found.append(child)
    return found


def send_measured(pub: Path, env: dict[str, str], transport: str,
                  tree: Path = ROOT) -> dict[str, float]:
    """Run `newsletter send` (the code in `tree`); returns wall seconds, peak RSS in MB of the
    sending process itself (VmHWM: wait4's ru_maxrss also counts the children it waited for,
    SpamAssassin run by the pre-send checks), that of its body-building child, the peak of
    both together (VmRSS sampled every 50 ms), the CPU seconds of each of the two (their own,
    as last sampled), and CPU seconds and ru_maxrss in MB of the sending process and the
    children it waited for."""
    args = [sys.executable, "-m", "newsletter", "-C", str(pub), "send", SLUG, "--segment",
            "everyone", "--transport", transport, "--yes", "--skip-url-check"]
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT)]
    env = {**env, "PYTHONPATH": os.pathsep.join([str(tree), *paths])}  # `tree`'s code first
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tree)
        peak = child_peak = together = own_cpu = 0.0
        known: dict[str, bool] = {}
        builder_cpu: dict[str, float] = {}
        while True:
            high, now = _status(proc.pid, "VmHWM", "VmRSS")  # before the reap: /proc has it
            peak = max(peak, high)
            own_cpu = _cpu(proc.pid) or own_cpu
            for child in _body_builders(proc.pid, known):
                child_high, child_now = _status(child, "VmHWM", "VmRSS")
                child_peak = max(child_peak, child_high)
                now += child_now
                builder_cpu[child] = _cpu(child) or builder_cpu.get(child, 0.0)
            together = max(together, now)
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
    return {"wall_s": wall, "peak_rss_mb": peak, "builder_peak_rss_mb": child_peak,
            "together_peak_rss_mb": max(together, peak), "sender_cpu_s": own_cpu,
            "builder_cpu_s": sum(builder_cpu.values()),
            "cpu_s": usage.ru_utime + usage.ru_stime, "ru_maxrss_mb": usage.ru_maxrss / 1024}


def send(pub: Path, env: dict[str, str], transport: str) -> tuple[float, float, float, float]:
    """`send_measured()` as (wall seconds, peak RSS of the sending process, CPU seconds,
    ru_maxrss), for the other benches."""
    m = send_measured(pub, env, transport)
    return m["wall_s"], m["peak_rss_mb"], m["cpu_s"], m["ru_maxrss_mb"]


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


def load() -> str:
    """The load average (1, 5 and 15 minutes) and the cores, for the figures beside it."""
    return f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"


def sendgrid_run(work: Path, name: str, count: int, base_env: dict[str, str],
                 *fake_options: str, tree: Path = ROOT) -> dict[str, Any]:
    """Fill a publication with `count` subscribers and send it (the code in `tree`) to a fake
    SendGrid."""
    pub = publication(work / name, tree)
    db = f"sqlite:///{pub / '.newsletter' / 'newsletter.db'}"
    print(f"filling {count:,} subscribers ...", flush=True)
    fill_s = fill(db, count, tree)
    with Fake(*fake_options) as fake:
        env = {**base_env, "NEWSLETTER_DATABASE_URL": db, "SENDGRID_API_URL": fake.url,
               "SENDGRID_API_KEY": API_KEY}
        print(f"sending {count:,} through sendgrid ({name}) ...", flush=True)
        load_before = load()
        m = send_measured(pub, env, "sendgrid", tree)
        stats = fake.stats()
    phase = send_phase(db)
    return {"recipients": count, "fill_s": round(fill_s, 1), "wall_s": round(m["wall_s"], 1),
            "cpu_s": round(m["cpu_s"], 1), "sender_cpu_s": round(m["sender_cpu_s"], 1),
            "builder_cpu_s": round(m["builder_cpu_s"], 1), "send_phase_s": round(phase, 1),
            "rate_per_s": round(count / phase), "peak_rss_mb": round(m["peak_rss_mb"], 1),
            "builder_peak_rss_mb": round(m["builder_peak_rss_mb"], 1),
            "together_peak_rss_mb": round(m["together_peak_rss_mb"], 1),
            "ru_maxrss_with_children_mb": round(m["ru_maxrss_mb"], 1),
            "requests": stats["requests"], "peak_in_flight": stats["peak"],
            "exactly_once": stats["accepted"] == count and stats["unique"] == count
            and stats["duplicates"] == 0, "load_before": load_before, "load_after": load(),
            "pub": pub, "db": db}


def export(rev: str, work: Path) -> Path:
    """The tree of git revision `rev`, in a folder of `work`."""
    tree = work / f"baseline-{rev.replace('/', '-')}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def compare(work: Path, rev: str, count: int, rounds: int,
            base_env: dict[str, str]) -> list[dict[str, Any]]:
    """The 300 ms send of `rev` and of this tree, alternately, `rounds` times each."""
    tree = export(rev, work)
    pairs = []
    for n in range(rounds):
        pair: dict[str, Any] = {}
        for label, code in ((rev, tree), ("this tree", ROOT)):
            result = sendgrid_run(work, f"compare-{n}-{'base' if code != ROOT else 'this'}",
                                  count, base_env, "--delay", str(LATENCY_S), tree=code)
            result.pop("pub"), result.pop("db")
            pair[label] = result
            print(f"  {label}: {result['rate_per_s']:,}/s (peak {result['peak_in_flight']} in "
                  f"flight), CPU of the sending process {result['sender_cpu_s']} s (+ builder "
                  f"{result['builder_cpu_s']} s), peak RSS {result['peak_rss_mb']} MB "
                  f"(+ builder {result['builder_peak_rss_mb']} MB), load "
                  f"{result['load_before']} -> {result['load_after']}", flush=True)
        this, then = pair["this tree"], pair[rev]
        pair["rate_ratio"] = round(this["rate_per_s"] / then["rate_per_s"], 2)
        pair["sender_cpu_ratio"] = round(this["sender_cpu_s"] / then["sender_cpu_s"], 2)
        print(f"round {n + 1}: this tree / {rev}: rate {pair['rate_ratio']}x, CPU of the "
              f"sending process {pair['sender_cpu_ratio']}x", flush=True)
        pairs.append(pair)
    return pairs


def verdict(name: str, value: float, target: float, *, at_least: bool, unit: str,
            why: str = "") -> tuple[str, bool]:
    """One line: the figure, the target, met or missed by how much (and why, if missed)."""
    met = value >= target if at_least else value <= target
    off = abs(value - target) / target * 100
    line = (f"{'PASS' if met else 'FAIL'}  {name}: {value:,.{2 if unit == 'x' else 1}f} {unit} "
            f"({'>=' if at_least else '<='} {target:,g}): "
            + (f"met, {off:.0f} % to spare" if met else f"missed by {off:.0f} %"))
    return line + (f"; {why}" if why and not met else ""), met


def why_slow(run: dict[str, Any]) -> str:
    """What a send at 300 ms a request was bound by, from its figures."""
    ceiling = run["peak_in_flight"] * 1000 / LATENCY_S
    cores = os.cpu_count() or 1
    busy = float(run["load_after"].split()[0])
    reasons = [f"{run['peak_in_flight']} requests in flight at most: a ceiling of "
               f"{ceiling:,.0f}/s"]
    if busy > cores:
        reasons.append(f"the machine was loaded (load {busy:.1f} on {cores} cores): the send "
                       "got a fraction of a core, so the rate is bound by CPU it did not get")
    return "; ".join(reasons)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--latency-subscribers", type=int, default=200_000)
    parser.add_argument("--outbox", type=int, default=20_000)
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the 300 ms send of git revision REV, side by side")
    parser.add_argument("--rounds", type=int, default=2, help="pairs for --baseline")
    parser.add_argument("--only-baseline", action="store_true",
                        help="with --baseline: only the side-by-side 300 ms sends")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="newsletter-bench-dispatch-"))
    base_env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSLETTER_SECRET": SECRET}
    results: dict[str, Any] = {}
    print(f"load average: {load()}", flush=True)
    try:
        if args.baseline:
            results["side_by_side_300ms"] = compare(work, args.baseline,
                                                    args.latency_subscribers, args.rounds,
                                                    base_env)
            if args.only_baseline:
                print(json.dumps(results, indent=2))
                return
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
            and stats["unique"] == args.subscribers, "load_after": load()}
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
            "load_after": load(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    sg, floor, slow, box = (results[k] for k in ("sendgrid", "minimal_client", "sendgrid_300ms",
                                                 "outbox"))
    lines = [
        verdict(f"sendgrid {sg['recipients']:,}, wall against the minimal client's "
                f"({sg['wall_s']} s / {floor['wall_s']} s)", sg["ratio_to_minimal"],
                RATIO_LIMIT, at_least=False, unit="x"),
        verdict(f"sendgrid {sg['recipients']:,}, peak RSS of the sending process",
                sg["peak_rss_mb"], RSS_LIMIT_MB, at_least=False, unit="MB"),
        verdict(f"sendgrid {sg['recipients']:,}, peak RSS of the sending process and its "
                f"body builder together (builder alone {sg['builder_peak_rss_mb']} MB)",
                sg["together_peak_rss_mb"], RSS_LIMIT_MB, at_least=False, unit="MB"),
        verdict(f"sendgrid with {LATENCY_S * 1000:.0f} ms per request over "
                f"{slow['recipients']:,} (load {slow['load_after']})", slow["rate_per_s"],
                LATENCY_MIN_RATE, at_least=True, unit="recipients/s", why=why_slow(slow)),
        verdict(f"outbox (load {box['load_after']})", box["rate_per_s"], OUTBOX_MIN_RATE,
                at_least=True, unit="msg/s"),
        (f"{'PASS' if sg['exactly_once'] and slow['exactly_once'] else 'FAIL'}  sendgrid "
         "exactly once", sg["exactly_once"] and slow["exactly_once"]),
        (f"{'PASS' if floor['same_request_bodies'] and floor['exactly_once'] else 'FAIL'}  the "
         "minimal client sends the same bodies, once each",
         floor["same_request_bodies"] and floor["exactly_once"]),
        (f"{'PASS' if box['files'] == box['messages'] else 'FAIL'}  outbox one file each",
         box["files"] == box["messages"]),
    ]
    for line, _ in lines:
        print(line)
    print(f"load average: {load()}")
    if args.subscribers == 1_000_000 and not all(met for _, met in lines):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
