"""The base of the local stand-ins for HTTP mail APIs (tests/fake_postmark.py,
tests/fake_mailgun.py): real HTTP on 127.0.0.1, a free port, a thread per request.

A provider's fake subclasses `FakeApi`: it says which requests carry valid credentials
(`refuse`), answers its routes (`routes`: method, path regex, handler), shapes its error bodies
(`error`), and handles its send endpoint (`send_pattern`, `accept`: check the request by the
provider's published rules and record what each recipient would get).

Around the send endpoint the base adds what tests program: `answer(status, ...)` queues one-off
answers (a `Retry-After` of "+N" stays N seconds; `action="drop"` processes the request, then
hangs up without answering; `action="reset"` hangs up without processing), `fail_randomly()`
answers some statuses at some rates, `delay` is how long each send takes. It records every
request (`requests`, `sends()`), how many sends were handled at once (`peak`), how many times
each address was accepted (`recipients()`), and with `instant` it checks only the first send in
full and then only counts addresses (the benchmark measures the sender, not the fake).
`python -m tests.fake_postmark` (or fake_mailgun) runs one standalone: it prints `PORT <n>` and
serves `GET /_fake/stats`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.counted_server import CountedServer


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # dict or list (sent as JSON), bytes, or None
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "respond"  # respond | drop (process, then hang up) | reset (hang up first)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    query: dict[str, list[str]] = field(default_factory=dict)
    match: re.Match[str] | None = None  # the route's match (path parameters)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Handler = Callable[[Any, Request], Answer]


class FakeApi:
    """A fake provider API. Use as a context manager, or start()/stop()."""

    #: the send endpoint's path (a regex): scripted answers, delay and counts apply to it
    send_pattern = ""

    def __init__(self, *, keep: bool = True, keep_alive: bool = True):
        self.keep = keep  # keep each recipient's message (tests) or only counts (bench)
        self.keep_alive = keep_alive  # HTTP/1.1 persistent connections
        self.instant = False
        self.checked = 0  # send requests that passed the provider's rules
        self.delay = 0.0
        self.sending = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, str, int, float]] = []  # method, path, status, when
        self.script: deque[Answer] = deque()
        self.chaos: tuple[random.Random, dict[int, float]] | None = None
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile("/_fake/stats"), FakeApi._stats)]
        self.server: CountedServer | None = None

    # -- what a provider's fake fills in ---------------------------------------------------
    def refuse(self, request: Request) -> Answer | None:
        """The provider's answer to missing or wrong credentials (None: they are right)."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> Answer:
        """An error answer in the provider's own shape."""
        raise NotImplementedError

    def accept(self, request: Request) -> Answer:
        """Check one send request by the provider's rules and record it."""
        raise NotImplementedError

    def count_only(self, request: Request) -> list[str]:
        """The addresses of a send request, read cheaply (the `instant` mode)."""
        raise NotImplementedError

    # -- control --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.insert(0, (method, re.compile(pattern), handler))

    def answer(self, status: int, body: Any = None, headers: dict | None = None,
               action: str = "respond", times: int = 1) -> None:
        """Queue `times` one-off answers for the next send requests."""
        for _ in range(times):
            self.script.append(Answer(status, body, dict(headers or {}), action))

    def fail_randomly(self, rates: dict[int, float], seed: int = 0) -> None:
        """Answer sends with these statuses at these rates (e.g. {429: .2, 500: .2})."""
        self.chaos = (random.Random(seed), rates)

    def recipients(self) -> Counter[str]:
        """How many times each address (lower case) was accepted."""
        with self.lock:
            return Counter(self.counts)

    def sends(self) -> list[tuple[int, float]]:
        """(status, time) of each send request so far."""
        pattern = re.compile(self.send_pattern)
        with self.lock:
            return [(r[2], r[3]) for r in self.requests if pattern.fullmatch(r[1])]

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every request the clients sent has been handled: call it once they have
        exited or been killed (a killed client's last request included; CountedServer)."""
        assert self.server is not None
        self.server.wait_settled(timeout)

    def start(self, port: int = 0) -> FakeApi:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path,
                                  {k.lower(): v for k, v in self.headers.items()}, body,
                                  parse_qs(parts.query))
                answer = fake.handle(request)
                if answer.action in ("drop", "reset"):
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                payload = answer.body
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                payload = payload or b""
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                if payload and "Content-Type" not in answer.headers:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = CountedServer(("127.0.0.1", port), _Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, request: Request) -> Answer:
        answer = self._handle(request)
        with self.lock:
            self.requests.append((request.method, request.path, answer.status, time.time()))
        return answer

    def _handle(self, request: Request) -> Answer:
        if request.path == "/_fake/stats":
            return self._stats(request)
        refused = self.refuse(request)
        if refused is not None:
            return refused
        if request.method == "POST" and re.fullmatch(self.send_pattern, request.path):
            return self._send(request)
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                request.match = match
                return handler(self, request)
        return self.error(404, "not found")

    def _stats(self, request: Request) -> Answer:
        with self.lock:
            counts = self.counts
            return Answer(200, {"requests": len(self.sends_unlocked()),
                                "accepted": sum(counts.values()), "unique": len(counts),
                                "duplicates": sum(n - 1 for n in counts.values() if n > 1),
                                "peak": self.peak})

    def sends_unlocked(self) -> list[tuple[str, str, int, float]]:
        pattern = re.compile(self.send_pattern)
        return [r for r in self.requests if pattern.fullmatch(r[1])]

    def _next_answer(self) -> Answer | None:
        with self.lock:
            if self.script:
                return self.script.popleft()
            if self.chaos:
                rng, rates = self.chaos
                roll = rng.random()
                for status, rate in rates.items():
                    if roll < rate:
                        headers = {"Retry-After": "0"} if status == 429 else {}
                        answer = self.error(status, f"chaos {status}")
                        answer.headers.update(headers)
                        return answer
                    roll -= rate
        return None

    def _send(self, request: Request) -> Answer:
        with self.lock:
            self.sending += 1
            self.peak = max(self.peak, self.sending)
        try:
            if self.delay:
                time.sleep(self.delay)
            scripted = self._next_answer()
            if scripted and scripted.action == "reset":
                return scripted
            if scripted and not 200 <= scripted.status < 300:
                if scripted.body is None:
                    scripted.body = self.error(scripted.status, f"scripted {scripted.status}").body
                after = scripted.headers.get("Retry-After", "")
                if after.startswith("+"):
                    scripted.headers["Retry-After"] = after[1:]
                return scripted
            if self.instant and self.checked:
                with self.lock:
                    self.counts.update(a.lower() for a in self.count_only(request))
                return self.instant_answer(request)
            answer = self.accept(request)
            if scripted and scripted.action == "drop":
                answer.action = "drop"
            return answer
        finally:
            with self.lock:
                self.sending -= 1

    def instant_answer(self, request: Request) -> Answer:
        """The success answer of the `instant` mode."""
        raise NotImplementedError


def main(fake_class: type[FakeApi], description: str) -> None:
    """Run a fake standalone (the benchmark does): prints PORT <n>."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count-only", action="store_true", help="keep counts, not messages")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each send takes")
    parser.add_argument("--instant", action="store_true",
                        help="check the first send in full, then only count addresses")
    args = parser.parse_args()
    fake = fake_class(keep=not args.count_only)
    fake.instant = args.instant
    fake.delay = args.delay
    fake.start(args.port)
    assert fake.server is not None
    print(f"PORT {fake.server.server_address[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()
