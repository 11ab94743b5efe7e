"""Amazon SES for tests: moto's standalone server (extended by tests.fake_ses_server) in its own
process, behind a small HTTP proxy in this process that can misbehave on purpose.

The real boto3 client talks to the proxy (`AWS_ENDPOINT_URL_SESV2`); the proxy forwards to
moto. For SendEmail requests it can instead, one request at a time (`answer()`):

- "throttle": answer 429 TooManyRequestsException ("Maximum sending rate exceeded.");
- ("aws", status, code, message): answer with SES's own JSON error;
- ("gateway", status, body): answer as a load balancer would (no SES error body);
- "cut": forward the request (moto takes it), then hang up without answering: the sender
  cannot know, the truth is in moto's log;
- "hangup": hang up before forwarding (nothing was taken; the sender cannot know either).

`delay` holds every SendEmail answer that long (the benchmark's 300 ms). `instant` (the
benchmark) forwards only the first SendEmail to moto and answers the rest itself after
counting their recipients, so the figures are the sender's. `messages()` is moto's log of
accepted messages (the provider's activity log an operator would read); `sends` lists what
the proxy did with each SendEmail (status or action, arrival time); `peak` is the most
SendEmail requests it held at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, deque
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from tests.counted_server import CountedSocket

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
SENDER_DOMAIN = "example.org"
SEND_PATH = "/v2/email/outbound-emails"
THROTTLE = (429, "TooManyRequestsException", "Maximum sending rate exceeded.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _aws_error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"message": message}).encode()
    return status, [("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/"),
                    ("Content-Type", "application/json"),
                    ("x-amzn-RequestId", str(uuid.uuid4()))], body


class FakeSes:
    """The stand-in: start with `with FakeSes() as fake:` (or `start()`/`stop()`)."""

    def __init__(self, *, light: bool = False, instant: bool = False, log_sends: bool = True):
        self.light, self.instant, self.log_sends = light, instant, log_sends
        self.delay = 0.0
        self.actions: deque[Any] = deque()
        self.other_actions: dict[str, deque[Any]] = {}  # path -> actions (not SendEmail)
        self.sends: list[tuple[Any, float]] = []
        self.counts: Counter[str] = Counter()  # recipients the proxy answered itself (instant)
        self.in_flight = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.peak = 0
        self.forwarded_sends = 0
        self._lock = threading.Lock()

    # -- life ------------------------------------------------------------------------------
    def start(self) -> FakeSes:
        self.port, self.control_port = free_port(), free_port()
        args = [sys.executable, "-m", "tests.fake_ses_server", "--port", str(self.port),
                "--control-port", str(self.control_port)] + (["--light"] if self.light else [])
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "READY" not in line:
            self.process.kill()
            raise RuntimeError(f"the SES stand-in did not start: {line!r}")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="fake-ses-proxy")
        self.thread.start()
        self.listener = CountedSocket()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, sock=self.listener, backlog=1024),
            self.loop).result()
        self.proxy_port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.moto_url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        self.process.terminate()
        self.process.wait(timeout=10)

    async def _shutdown(self) -> None:
        """Stop listening, close every client connection and let their tasks end."""
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(tasks, timeout=5) if tasks else None

    def __enter__(self) -> FakeSes:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """The AWS environment that points boto3 (through the proxy) at the stand-in."""
        return {"AWS_ENDPOINT_URL_SESV2": self.url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION}

    def client(self) -> Any:
        """A boto3 SES v2 client straight to moto (for a test's own set-up)."""
        import boto3

        return boto3.session.Session().client(
            "sesv2", region_name=REGION, endpoint_url=self.moto_url,
            aws_access_key_id="testing", aws_secret_access_key="testing")

    # -- the server's state ---------------------------------------------------------------
    def _control(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data,
                                         method="GET" if data is None else "POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def reset(self, **account: Any) -> None:
        """A fresh account (production access, 1000 messages/s unless told), no messages, no
        suppressions, none of moto's own resources (configuration sets, identities), a verified
        sender domain; the proxy forwards everything again."""
        urllib.request.urlopen(urllib.request.Request(f"{self.moto_url}/moto-api/reset",
                                                      data=b"", method="POST"), timeout=30).close()
        defaults = {"MaxSendRate": 1000.0, "Max24HourSend": 1_000_000.0, "SentLast24Hours": 0,
                    "ProductionAccessEnabled": True, "SendingEnabled": True,
                    "EnforcementStatus": "HEALTHY", "enforce_rate": True}
        self._control("/reset", {**defaults, **account})
        self.client().create_email_identity(EmailIdentity=SENDER_DOMAIN)
        with self._lock:
            self.actions.clear()
            self.other_actions.clear()
            self.sends.clear()
            self.counts.clear()
            self.delay, self.peak, self.forwarded_sends = 0.0, 0, 0

    def account(self, **fields: Any) -> None:
        """Change the account (MaxSendRate, ProductionAccessEnabled, enforce_rate, ...)."""
        self._control("/account", fields)

    def suppress(self, entries: list[dict[str, Any]]) -> None:
        """Put entries (EmailAddress, Reason, LastUpdateTime) on the suppression list."""
        self._control("/suppressed", entries)

    def suppressed(self) -> list[str]:
        """The addresses on the suppression list (lower case)."""
        return self._control("/suppressed")

    def messages(self) -> list[dict[str, Any]]:
        """moto's log of accepted messages: MessageId, To, From, Tags, Raw (base64), at."""
        return self._control("/messages")

    def message_count(self) -> int:
        return self._control("/count")["messages"]

    def recipients(self) -> Counter[str]:
        """How many messages each address was sent (moto's log, plus what `instant` took)."""
        found: Counter[str] = Counter(self.counts)
        for message in self.messages():
            for address in message["To"]:
                found[address.lower()] += 1
        return found

    @staticmethod
    def parsed(message: dict[str, Any]) -> Any:
        """A logged message's raw MIME, parsed."""
        return message_from_bytes(base64.b64decode(message["Raw"]), policy=policy.default)

    # -- the proxy ------------------------------------------------------------------------
    def answer(self, action: Any, times: int = 1, path: str = SEND_PATH) -> None:
        """Queue `action` for the next `times` requests to `path` (SendEmail by default;
        "/v2/email/account" is GetAccount)."""
        with self._lock:
            if path == SEND_PATH:
                self.actions.extend([action] * times)
            else:
                self.other_actions.setdefault(path, deque()).extend([action] * times)

    def wait_idle(self, timeout: float = 30) -> None:
        """Until every request the clients sent has been relayed and answered (none is held
        by the proxy then: a request is let go before its connection closes): call it once
        the clients have exited or been killed (a killed client's last request may still wait
        to be accepted or read: tests/counted_server.py)."""
        self.listener.wait_settled(timeout)

    def _take(self) -> Any:
        with self._lock:
            action = self.actions.popleft() if self.actions else "forward"
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return action

    def _done(self, what: Any, arrived: float) -> None:
        with self._lock:
            self.in_flight -= 1
            if self.log_sends:
                self.sends.append((what, arrived))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
            self.listener.release()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Relay one request; False when the client connection is to be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith("content-length:")), 0)
        body = await reader.readexactly(length) if length else b""
        if not (method == "POST" and path.startswith(SEND_PATH)):
            with self._lock:
                queued = self.other_actions.get(path.split("?")[0])
                action = queued.popleft() if queued else None
            if action == "hangup":
                return False
            if isinstance(action, tuple) and action[0] == "aws":
                status, headers, data = _aws_error(*action[1:])
            else:
                status, headers, data = await self._forward(head, body)
            await self._reply(writer, status, headers, data)
            return True
        arrived = time.time()
        action = self._take()
        what: Any = action
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if action == "hangup":
                return False
            if action == "throttle":
                status, headers, data = _aws_error(*THROTTLE)
            elif isinstance(action, tuple) and action[0] == "aws":
                status, headers, data = _aws_error(*action[1:])
            elif isinstance(action, tuple) and action[0] == "gateway":
                status, headers, data = action[1], [("Content-Type", "text/html")], action[2]
            elif self.instant and self.forwarded_sends:
                status, headers, data = self._instant(body)
            else:
                self.forwarded_sends += 1
                status, headers, data = await self._forward(head, body)
            if action == "cut":
                what = ("cut", status)
                return False
            what = status if action == "forward" else (action if isinstance(action, str)
                                                        else action[0], status)
            await self._reply(writer, status, headers, data)
            return True
        finally:
            self._done(what, arrived)

    def _instant(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        request = json.loads(body)
        for address in request["Destination"]["ToAddresses"]:
            self.counts[address.lower()] += 1
        answer = json.dumps({"MessageId": f"{uuid.uuid4().hex}-000000"}).encode()
        return 200, [("Content-Type", "application/json")], answer

    async def _forward(self, head: bytes, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to moto (which closes each connection after its answer)."""
        lines = [line for line in head.decode("latin-1").split("\r\n")[:-2]
                 if not line.lower().startswith("connection:")]
        head = ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode("latin-1")
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            upstream_writer.write(head + body)
            await upstream_writer.drain()
            answer = await upstream_reader.read()
        finally:
            upstream_writer.close()
        top, _, data = answer.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
        keep = [(k, v) for k, v in headers
                if k.lower() not in ("connection", "content-length", "transfer-encoding")]
        return status, keep, data  # type: ignore[return-value]

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]],
                     data: bytes) -> None:
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
        lines.append(f"Content-Length: {len(data)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()
