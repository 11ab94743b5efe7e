"""`newsletter serve` as a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.web.public.conftest import Site, event, signed

ROOT = Path(__file__).resolve().parents[3]  # tests/web/public -> the repository


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(site: Site, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "newsletter", "-C", str(site.root), "serve",
                             *args], env={**os.environ, **(env or site.env),
                                          "PYTHONPATH": str(ROOT)},
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60  # start-up takes long only on a loaded machine
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def test_serve_answers_health_unsubscribe_and_webhook_over_http(site: Site) -> None:
    port = _free_port()
    site.add("reader@example.com")
    process = _spawn(site, "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base}/healthz", process)
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["database"] == "ok"
        assert "server" not in health.headers  # no version banner behind the proxy
        one_click = httpx.post(base + site.unsubscribe_path("reader@example.com"),
                               content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert one_click.status_code == 200
        assert site.status("reader@example.com") == "unsubscribed"
        body = json.dumps([event("group_resubscribe", "reader@example.com", "r1")]).encode()
        hook = httpx.post(f"{base}/webhooks/sendgrid", content=body,
                          headers=signed(site.key, body))
        assert hook.status_code == 200 and hook.json()["applied"] == 1
        assert site.status("reader@example.com") == "active"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    assert process.returncode == 0


def test_serve_refuses_to_start_without_a_secret(site: Site) -> None:
    env = {k: v for k, v in site.env.items() if k != "NEWSLETTER_SECRET"}
    process = _spawn(site, "--port", str(_free_port()), env={**env, "NEWSLETTER_SECRET": ""})
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "NEWSLETTER_SECRET is not set" in err and "Traceback" not in err
    assert "Serving" not in out


def test_serve_reports_a_busy_port(site: Site) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _spawn(site, "--port", str(port))
        out, err = process.communicate(timeout=30)
    assert process.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in err
