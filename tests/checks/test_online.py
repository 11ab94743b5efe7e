"""--online: links answer (HEAD, then GET), in parallel, with a timeout; a real local server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from newsletter.checks import ERROR, WARNING
from newsletter.checks.online import probe_all
from tests.checks.conftest import check, edit, of, write_piece

SLOW = 1.5


class Handler(BaseHTTPRequestHandler):
    def _answer(self, body: bool) -> None:
        path = self.path
        if path in ("/big.png", "/stream.png"):
            self._image(body)
            return
        if path.startswith("/slow"):
            time.sleep(SLOW)
        if path == "/missing":
            status = 404
        elif path == "/no-head" and self.command == "HEAD":
            status = 405
        else:
            status = 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if body:
            self.wfile.write(b"ok")

    def _image(self, body: bool) -> None:
        """/big.png: 2 MB, sized in Content-Length; /stream.png: GET only, 1.2 MB unsized."""
        size = 2_000_000 if self.path == "/big.png" else 1_200_000
        if self.path == "/stream.png" and self.command == "HEAD":
            self.send_response(405)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if self.path == "/big.png":
            self.send_header("Content-Length", str(size))
        self.end_headers()
        if body:
            self.wfile.write(b"\0" * size)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def local_publication(root: Path, base: str, body: str) -> None:
    """Point every URL of the issue at the local server: settings, experts, footer, pieces."""
    config = root / "newsletter.yaml"
    edit(config, "https://news.example.org/archive/", f"{base}/archive/")
    edit(config, "public_url: https://news.example.org/", f"public_url: {base}/")
    edit(config, "(https://example.org/donors)", f"({base}/donors)")
    text = config.read_text()
    for handle in ("elenamarsh_nrg", "tomasreyes", "dokafor_trade", "hostrander", "m_lindqvist"):
        text = text.replace(f", twitter: {handle}", "")
    config.write_text(text)
    for name in ("energy.md", "egypt.md", "trade.md"):
        write_piece(root, name, "Nothing linked here.")
    write_piece(root, "cyber.md", body)


def test_broken_links_are_found_and_head_refusals_retried_with_get(
    publication: Path, server: str
) -> None:
    local_publication(
        publication,
        server,
        f"[fine]({server}/fine) [gone]({server}/missing) [no head]({server}/no-head)",
    )
    assert of(check(publication), "links.online") == []  # offline by default
    findings = of(check(publication, online=True, timeout=5), "links.online")
    assert [(f.severity, f.line) for f in findings] == [(ERROR, 6)]
    assert "HTTP 404" in findings[0].message and "/missing" in findings[0].message


def test_links_are_checked_in_parallel_and_slow_ones_time_out(server: str) -> None:
    urls = [f"{server}/slow/{n}" for n in range(6)]
    started = time.perf_counter()
    answers = probe_all(urls, timeout=5)
    elapsed = time.perf_counter() - started
    assert all(a.ok for a in answers)
    assert elapsed < 3 * SLOW  # six requests of 1.5 s each: sequential would take 9 s
    [late] = probe_all([f"{server}/slow/late"], timeout=0.3)
    assert late.error == "timed out" and not late.ok


def test_a_link_that_times_out_is_a_warning(publication: Path, server: str) -> None:
    local_publication(publication, server, f"[slow]({server}/slow/page)")
    [finding] = of(check(publication, online=True, timeout=0.3), "links.online")
    assert finding.severity == WARNING and "timed out" in finding.message


def test_a_refused_connection_is_an_error(publication: Path, server: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    local_publication(publication, server, f"[nobody]({closed}/page)")
    [finding] = of(check(publication, online=True, timeout=2), "links.online")
    assert finding.severity == ERROR and closed in finding.message


def test_remote_images_over_1_mb_warn_at_their_line(publication: Path, server: str) -> None:
    local_publication(
        publication,
        server,
        f"![Big]({server}/big.png)\n\n![Streamed]({server}/stream.png)\n\n"
        f"![Small]({server}/fine.png)\n\n![Gone]({server}/missing)",
    )
    assert of(check(publication), "images.remote-heavy") == []  # offline by default
    report = check(publication, online=True, timeout=5)
    heavy = of(report, "images.remote-heavy")
    assert [(f.severity, f.line) for f in heavy] == [(WARNING, 6), (WARNING, 8)]
    assert "1953 KB" in heavy[0].message and "/stream.png" in heavy[1].message
    [gone] = of(report, "links.online")  # an image that does not load is a broken link
    assert gone.line == 12 and gone.severity == ERROR
