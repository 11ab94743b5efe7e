"""The drafting's HTTP: robots.txt answers as RFC 9309 reads them, redirects checked hop by hop,
one request per URL, and no answer larger than the limit is read whole."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsletter.compose.draft.fetch import Fetcher, FetchError, is_private

Route = tuple[int, dict[str, str], bytes]


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[tuple[str, list[str]]]:
    """A plain HTTP server on a free port of 127.0.0.1 answering `routes` (else 404)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            status, headers, body = routes.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


PAGE: Route = (200, {"Content-Type": "text/html; charset=windows-1256"},
               "<p>مرحبا</p>".encode("cp1256"))


@pytest.mark.parametrize(("robots", "allowed"), [
    ((404, {}, b""), True),  # no robots.txt: everything is allowed
    ((403, {}, b""), True),  # 4xx: "unavailable", allowed (RFC 9309 2.3.1.3)
    ((503, {}, b""), False),  # 5xx: "unreachable", nothing is (2.3.1.4)
    ((200, {}, b"User-agent: newsletter-drafter\nDisallow: /page\n"), False),
    ((200, {}, b"User-agent: *\nDisallow: /private/\n"), True),
])
def test_robots_txt(robots: Route, allowed: bool) -> None:
    with serve({"/robots.txt": robots, "/page": PAGE}) as (base, seen), Fetcher() as fetcher:
        if allowed:
            page = fetcher.get(f"{base}/page")
            assert page.text() == "<p>مرحبا</p>"  # the charset the server names
        else:
            with pytest.raises(FetchError) as caught:
                fetcher.get(f"{base}/page")
            assert caught.value.kind == "robots"
        fetcher.allowed(f"{base}/other")
    assert seen == ["/robots.txt"] + (["/page"] if allowed else [])  # robots.txt read once


def test_redirects_are_followed_and_checked_hop_by_hop() -> None:
    routes: dict[str, Route] = {
        "/old": (301, {"Location": "/new"}, b""), "/new": PAGE,
        "/sneaky": (302, {"Location": "file:///etc/passwd"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
    }
    with serve(routes) as (base, seen), Fetcher() as fetcher:
        assert fetcher.get(f"{base}/old").url == f"{base}/new"
        with pytest.raises(FetchError, match="not an http"):
            fetcher.get(f"{base}/sneaky")
        with pytest.raises(FetchError, match="more than 5 redirects"):
            fetcher.get(f"{base}/loop")
        with pytest.raises(FetchError, match="more than 5 redirects"):
            fetcher.get(f"{base}/loop")  # remembered: not asked again
    assert seen.count("/loop") == 6 and seen.count("/old") == 1


def test_a_large_answer_is_refused_before_it_is_read() -> None:
    big: Route = (200, {"Content-Type": "text/html"}, b"x" * 300_000)
    with serve({"/big": big, "/big-too": big}) as (base, _), Fetcher() as fetcher:
        assert len(fetcher.get(f"{base}/big", max_bytes=400_000).body) == 300_000
        with pytest.raises(FetchError) as caught:
            fetcher.get(f"{base}/big-too", max_bytes=200_000)  # its Content-Length says so
        assert caught.value.kind == "too-large"
        assert caught.value.reason == "it is 293 KB, over the 195 KB limit"


def test_an_address_with_nothing_listening_is_a_network_error() -> None:
    with serve({}) as (base, _):
        pass  # the port is free again
    with Fetcher(timeout=2) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get(f"{base}/page")
    assert caught.value.kind == "robots"  # robots.txt unreachable: nothing is fetched


@pytest.mark.parametrize(("url", "private"), [
    ("http://127.0.0.1:8000/page", True), ("http://localhost/", True), ("http://[::1]/", True),
    ("http://10.1.2.3/", True), ("http://192.168.0.9/", True),
    ("http://169.254.169.254/latest/meta-data/", True),  # a cloud's metadata service
    ("https://93.184.215.14/", False), ("https://[2606:4700::1111]/", False),
])
def test_which_addresses_are_off_the_public_internet(url: str, private: bool) -> None:
    assert is_private(url) is private


def test_a_public_feed_cannot_send_the_drafter_to_a_private_address() -> None:
    with serve({"/page": PAGE}) as (base, seen), Fetcher(public_only=True) as fetcher:
        with pytest.raises(FetchError) as caught:
            fetcher.get(f"{base}/page")
    assert caught.value.kind == "address" and seen == []  # not even robots.txt
