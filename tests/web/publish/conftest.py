"""Publish fixtures: a sample publication whose public_url and archive_url point at a local port,
and helpers to run `newsletter` commands (in this process) and `newsletter serve` (as a real
process)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.web.publish.tls_proxy import TlsProxy, make_certificate

ROOT = Path(__file__).resolve().parents[3]  # tests/web/publish -> the repository
SECRET = "publish-test-secret-0123456789abcdef"
SLUG = "2026-11-24"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Local:
    """A publication at https://127.0.0.1:<tls_port>/ (a TLS proxy in front of `serve` on
    <port>), with its archive under /archive/."""

    root: Path
    port: int
    tls_port: int
    env: dict[str, str]
    servers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The public base URL, through the TLS proxy."""
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def direct(self) -> str:
        """`serve` itself, plain HTTP."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def published(self) -> Path:
        return self.root / "published"

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`newsletter -C root ARGS` run in this process (click's CliRunner, from the
        repository's folder, with the publication's environment): no test here needs the
        command in a process of its own, and each process costs a second of imports."""
        from click.testing import CliRunner

        from newsletter.cli import main

        with contextlib.chdir(ROOT):
            result = CliRunner().invoke(main, ["-C", str(self.root), *args],
                                        env={**self.env, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(["newsletter", *args], result.exit_code,
                                           result.stdout, result.stderr)

    def serve(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `newsletter serve` on the publication's port and wait for /healthz."""
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "-C", str(self.root), "serve", "--port",
             str(self.port), *args], env={**os.environ, **self.env, **(env or {})}, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.servers.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.get(f"{self.direct}/healthz", timeout=1).status_code < 500:
                    return process
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("newsletter serve did not start")

    def stop(self, process: subprocess.Popen) -> tuple[str, str]:
        process.terminate()  # SIGTERM, as systemd stops it
        out, err = process.communicate(timeout=30)
        return out, err


def localise(root: Path, base: str) -> None:
    """Point public_url and archive_url of the publication at `base`."""
    config = root / "newsletter.yaml"
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^archive_url: .*$", f"archive_url: {base}/archive/", text)
    text = re.sub(r"(?m)^public_url: .*$", f"public_url: {base}/", text)
    config.write_text(text, encoding="utf-8")


@pytest.fixture()
def local(publication: Path, tmp_path: Path) -> Iterator[Local]:
    port, tls_port = free_port(), free_port()
    cert, key = make_certificate(tmp_path)
    proxy = TlsProxy(tls_port, port, cert, key)
    localise(publication, f"https://127.0.0.1:{tls_port}")
    env = {"SSL_CERT_FILE": str(cert), "NEWSLETTER_SECRET": SECRET,
           "NEWSLETTER_TRANSPORT": "outbox", "NEWSLETTER_SKIP_URL_CHECK": "0",
           "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"), "PYTHONPATH": str(ROOT),
           "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'newsletter.db'}"}
    for key in ("SENDGRID_API_KEY", "SENDGRID_WEBHOOK_PUBLIC_KEY", "SMTP_URL", "CI_UNUSED"):
        env.setdefault(key, "")
    site = Local(publication, port, tls_port, env)
    yield site
    proxy.close()
    for process in site.servers:  # the server and its workers (their own process group)
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
