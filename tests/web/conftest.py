"""Web fixtures: a preview server on a free 127.0.0.1 port, run by uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SLUG = "2026-11-24"


@dataclass
class RunningServer:
    url: str
    app: object
    root: Path

    @property
    def live(self):
        return self.app.state.live

    def client(self) -> httpx.Client:
        # 60 s: /send-test runs the send gate, SpamAssassin included (seconds of CPU on a busy
        # machine).
        return httpx.Client(base_url=self.url, timeout=60)


def run_in_thread(app: object) -> tuple[str, object, threading.Thread]:
    """Start uvicorn for `app` on a free port; return (base URL, server, thread) once it listens."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the preview server did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def stop(server: object, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture()
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private SQLite database for the publication, via NEWSLETTER_DATABASE_URL."""
    url = f"sqlite:///{tmp_path / 'subscribers.db'}"
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.delenv("NEWSLETTER_TRANSPORT", raising=False)
    return url


@pytest.fixture()
def preview(publication: Path, database: str) -> Iterator[RunningServer]:
    """The preview of the sample issue, served from a private copy of the sample publication."""
    from newsletter.web.preview import create_app

    app = create_app(publication, publication / "issues" / SLUG)
    url, server, thread = run_in_thread(app)
    yield RunningServer(url, app, publication)
    stop(server, thread)
