"""A public server that holds: CSRF on the form, GETs that change nothing, old events pruned with
engagement totals kept, a sign-up throttle shared by several real `serve` processes, and a
webhook body cap that holds for chunked bodies (memory measured on a real process)."""

from __future__ import annotations

import datetime as dt
import select as select_module
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from newsletter.cli import main
from newsletter.db.tables import engagement, signups, subscribers, webhook_events
from newsletter.events.prune import prune_events
from newsletter.events.stats import engagement_by_send
from tests.web.public.conftest import Site, csrf_token, make_client, post_form, signed
from tests.web.public.test_serve import _free_port, _spawn, _wait


def _signup_count(site: Site) -> int:
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(signups)).scalar_one()


def test_subscribe_needs_the_form_csrf_token_and_its_cookie(site: Site, client) -> None:
    missing = client.post("/subscribe", data={"email": "a@example.com"})
    assert missing.status_code == 403 and "expired" in missing.text
    token = csrf_token(client.get("/subscribe").text)
    with make_client(site) as stranger:  # a token without its cookie (another browser)
        assert stranger.post("/subscribe", data={"email": "a@example.com", "csrf": token}) \
            .status_code == 403
    forged = client.post("/subscribe", data={"email": "a@example.com", "csrf": token[:-2] + "AA"})
    assert forged.status_code == 403
    assert _signup_count(site) == 0 and not site.outbox.exists()
    assert client.post("/subscribe", data={"email": "a@example.com", "csrf": token}) \
        .status_code == 200
    assert _signup_count(site) == 1
    cookie = client.cookies.get("nl_csrf")
    assert cookie and len(cookie) >= 16


def _snapshot(site: Site) -> tuple:
    with site.engine.connect() as conn:
        return (sorted(map(tuple, conn.execute(select(subscribers)).all())),
                sorted(map(tuple, conn.execute(select(signups)).all())))


def test_gets_never_change_state(site: Site, client) -> None:
    site.add("reader@example.com")
    post_form(client, {"email": "joiner@example.com"})
    [message] = site.messages()
    from tests.web.public.conftest import confirm_link

    confirm = "/" + confirm_link(message).split("/", 3)[3]
    before = _snapshot(site)
    for path in ("/subscribe", "/healthz", site.unsubscribe_path("reader@example.com"), confirm,
                 "/resubscribe/" + site.unsubscribe_path("reader@example.com").rsplit("/")[-1],
                 "/webhooks/sendgrid"):
        for method in ("GET", "HEAD"):
            answer = client.request(method, path)
            assert answer.status_code in (200, 405), (method, path, answer.status_code)
    assert _snapshot(site) == before
    assert len(site.messages()) == 1


def _old_events(site: Site, old: int, new: int) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [{"sg_event_id": f"old{i}", "event": "open", "email_key": "r@example.com",
             "send_id": 1, "occurred_at": now, "received_at": now - dt.timedelta(days=401)}
            for i in range(old)]
    rows += [{"sg_event_id": f"new{i}", "event": "open", "email_key": "r@example.com",
              "send_id": 1, "occurred_at": now, "received_at": now - dt.timedelta(days=399)}
             for i in range(new)]
    with site.engine.begin() as conn:
        conn.execute(insert(webhook_events), rows)
        conn.execute(insert(engagement), [{"send_id": 1, "email_key": "r@example.com",
                                           "delivered": 1, "opens": old + new, "clicks": 2,
                                           "deferred": 0, "bounces": 0, "blocked": 0,
                                           "dropped": 0, "complaints": 0, "unsubscribes": 0}])


def _event_ids(site: Site) -> set[str]:
    with site.engine.connect() as conn:
        return set(conn.execute(select(webhook_events.c.sg_event_id)).scalars())


def test_prune_deletes_old_events_in_batches_and_keeps_the_totals(site: Site) -> None:
    _old_events(site, 23, 4)
    with site.engine.connect() as conn:
        totals = engagement_by_send(conn, [1])
    report = prune_events(site.engine, 400, batch=5)
    assert (report.deleted, report.batches) == (23, 5)
    assert _event_ids(site) == {f"new{i}" for i in range(4)}
    with site.engine.connect() as conn:
        assert engagement_by_send(conn, [1]) == totals and totals[1].opens == 27
    assert prune_events(site.engine, 400).deleted == 0


def test_events_prune_command_and_keep_days_setting(site: Site) -> None:
    _old_events(site, 3, 2)
    env = {**site.env, "NEWSLETTER_EVENTS_KEEP_DAYS": "500"}
    kept = CliRunner().invoke(main, ["-C", str(site.root), "events", "prune"], env=env)
    assert kept.exit_code == 0 and "deleted 0 webhook event" in kept.output
    done = CliRunner().invoke(main, ["-C", str(site.root), "events", "prune"], env=site.env)
    assert done.exit_code == 0 and "deleted 3 webhook event" in done.output
    assert "engagement totals kept" in done.output
    assert _event_ids(site) == {"new0", "new1"}
    bad = CliRunner().invoke(main, ["-C", str(site.root), "events", "prune"],
                             env={**site.env, "NEWSLETTER_EVENTS_KEEP_DAYS": "soon"})
    assert bad.exit_code == 2 and "NEWSLETTER_EVENTS_KEEP_DAYS" in bad.output


def test_serve_prunes_by_itself(site: Site) -> None:
    _old_events(site, 7, 1)
    with make_client(site, prune=True) as client:  # start-up runs the first pruning
        deadline = time.monotonic() + 10
        while len(_event_ids(site)) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").status_code == 200
    assert _event_ids(site) == {"new0"}


@pytest.mark.slow
def test_two_serve_processes_share_one_throttle(site: Site) -> None:
    """20 sign-up requests per IP per hour, counted in the database: two real processes,
    requests sent to both at once, three rounds (one forwarded client IP each)."""
    ports = [_free_port(), _free_port()]
    processes = [_spawn(site, "--port", str(p)) for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for process, base in zip(processes, bases, strict=True):
            _wait(f"{base}/healthz", process)
        for round_ in range(3):
            ip = f"203.0.113.{round_ + 1}"
            with httpx.Client() as browser:
                token = csrf_token(browser.get(f"{bases[0]}/subscribe").text)
                cookies = dict(browser.cookies)

            def one(n: int, ip: str = ip, token: str = token, cookies: dict = cookies) -> int:
                answer = httpx.post(f"{bases[n % 2]}/subscribe", cookies=cookies,
                                    data={"email": f"r{n}-{ip}@example.com", "csrf": token},
                                    headers={"X-Forwarded-For": ip}, timeout=30)
                return answer.status_code

            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(one, range(30)))
            assert sorted(codes) == [200] * 20 + [429] * 10, (round_, codes)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_a_chunked_50mb_webhook_body_is_refused_without_growing_the_process(site: Site) -> None:
    port = _free_port()
    process = _spawn(site, "--port", str(port), "--log-level", "warning")
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", process)
        before = _peak_rss_mb(process.pid)
        chunk = b"[" + b" " * (64 * 1024 - 2) + b"]"
        sent, answer = 0, b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            headers = signed(site.key, b"[]")  # fresh headers; the body will not match them
            sock.sendall(b"POST /webhooks/sendgrid HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
                         + b"Transfer-Encoding: chunked\r\n\r\n")
            try:
                while sent < 50 * 1024 * 1024 and not answer:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                    if select_module.select([sock], [], [], 0)[0]:
                        answer = sock.recv(4096)
                if not answer:
                    sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            if not answer:
                answer = sock.recv(4096)
        peak = _peak_rss_mb(process.pid)
        print(f"\nserve process: {before:.1f} MB before, peak {peak:.1f} MB after a chunked "
              f"body cut off at {sent / 2**20:.1f} MB sent")
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 50 * 1024 * 1024  # refused before the whole body was read
        assert peak < 100, peak
        assert peak - before < 10  # the refused body never sat in memory
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
