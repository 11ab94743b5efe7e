"""`newsletter serve` run as in production: several worker processes sharing the database, an
access log without personal data, graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import lxml.html
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from newsletter.core.tokens import unsubscribe_url
from newsletter.db import open_database
from newsletter.db.tables import webhook_events
from newsletter.providers.sendgrid.signature import public_key_text
from tests.web.public.conftest import event, signed
from tests.web.publish.conftest import SECRET, Local

pytestmark = pytest.mark.slow


@pytest.fixture()
def workers(local: Local, db_url: str):
    """`serve --workers 2` on `db_url`, with a webhook key; yields (local, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    local.env.update(NEWSLETTER_DATABASE_URL=db_url,
                     SENDGRID_WEBHOOK_PUBLIC_KEY=public_key_text(key))
    process = local.serve("--workers", "2")
    yield local, key, process


def _outbox(local: Local) -> list[Path]:
    return sorted(Path(local.env["NEWSLETTER_OUTBOX"]).rglob("*.eml"))


def _wait_for_mail(local: Local, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(_outbox(local)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_two_workers_share_webhook_dedup_and_the_address_throttle(workers, db_url) -> None:
    local, key, process = workers
    batch = [event("open", f"reader{i}@example.com", f"evt-{i}") for i in range(5)]
    body = json.dumps(batch).encode()

    def post_hook(_: int) -> dict:
        with httpx.Client() as client:  # a new connection each time: either worker answers
            response = client.post(f"{local.direct}/webhooks/sendgrid", content=body,
                                   headers=signed(key, body))
        assert response.status_code == 200, response.text
        return response.json()

    def subscribe(_: int) -> int:
        with httpx.Client() as client:
            return _post_form(client, local.direct, {"email": "once@example.org", "name": "Once"})

    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(post_hook, range(12)))
        statuses = list(pool.map(subscribe, range(8)))
    assert sum(r["applied"] for r in reports) == 5  # each event stored once...
    assert sum(r["duplicates"] for r in reports) == 55  # ...and recognised 55 times after
    engine = open_database(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(webhook_events)).scalar() == 5
    finally:
        engine.dispose()
    assert statuses == [200] * 8  # the page is the same whether or not a mail goes out
    _wait_for_mail(local, 1)
    assert len(_outbox(local)) == 1  # one confirmation email, though two processes answered
    token_url = unsubscribe_url(f"{local.base}/", SECRET, "once@example.org")
    path = "/" + token_url.split("/", 3)[3]
    assert httpx.get(local.direct + path).status_code == 200
    out, err = local.stop(process)
    assert process.returncode == 0
    # still one once both workers have finished every request and task (a graceful stop):
    # a second, wrong confirmation had no moment left to arrive in
    assert len(_outbox(local)) == 1
    assert err.count("Started server process") == 2  # two workers really ran
    access = [line for line in err.splitlines() if "newsletter.access" in line]
    assert any('"POST /webhooks/sendgrid" 200' in line for line in access)
    assert any('"GET /unsubscribe/' in line for line in access)
    token = path.rsplit("/", 1)[1]
    for line in err.splitlines():  # no address, no whole token, no client IP anywhere
        assert "@example" not in line and token not in line and token[:12] not in line
    assert all("127.0.0.1:" not in line for line in access)


def _post_form(client: httpx.Client, base: str, data: dict) -> int:
    """POST the sign-up form as a browser does: GET it (CSRF cookie and token), then send."""
    form = client.get(f"{base}/subscribe")
    [token] = lxml.html.fromstring(form.text).xpath('//input[@name="csrf"]/@value')
    return client.post(f"{base}/subscribe", data={**data, "csrf": token}).status_code


def test_two_workers_share_the_ip_throttle(workers) -> None:
    local, _, _ = workers

    def subscribe(i: int) -> int:
        with httpx.Client() as client:
            return _post_form(client, local.direct, {"email": f"r{i}@example.org"})

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(subscribe, range(30)))
    assert statuses.count(200) == 20 and statuses.count(429) == 10  # Limits.ip_requests


class _Lines:
    """A running process's stderr, read line by line in a thread (nothing else may read it)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: any(text in line for line in self.lines),
                                         timeout):
                raise AssertionError(f"no {text!r} on stderr: {''.join(self.lines)}")


def test_sigterm_lets_the_request_in_flight_finish(local: Local) -> None:
    process = local.serve("--graceful-timeout", "10")
    form = httpx.get(f"{local.direct}/subscribe")
    [token] = lxml.html.fromstring(form.text).xpath('//input[@name="csrf"]/@value')
    cookie = "; ".join(f"{name}={value}" for name, value in form.cookies.items()).encode()
    body = b"email=late%40example.org&name=Late&csrf=" + quote(token).encode()
    with socket.create_connection(("127.0.0.1", local.port), timeout=20) as sock:
        sock.sendall(b"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + cookie +
                     b"\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
        # a later connection answered: the server has accepted ours and read its headers
        assert httpx.get(f"{local.direct}/healthz", timeout=20).status_code == 200
        stderr = _Lines(process)
        process.send_signal(signal.SIGTERM)
        stderr.wait_for("Waiting for connections to close")  # the shutdown has begun...
        assert process.poll() is None  # ... and waits for the request in flight
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{local.direct}/healthz", timeout=2)  # no new connections
        sock.sendall(body[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    process.wait(timeout=20)
    stderr.reader.join(timeout=20)
    assert process.returncode == 0
