"""A local stand-in for api.sendgrid.com: real HTTP on 127.0.0.1, SendGrid's own rules.

`FakeSendGrid` runs a threaded HTTP server. `POST /v3/mail/send` checks the body the way
SendGrid documents it (limits, reserved headers, content order, ...) and answers 400 with
SendGrid-style errors when a rule is broken; otherwise it records one `Delivery` per
personalization, with the subject and both parts already substituted as SendGrid would.

Scheduled sends follow SendGrid's rules: `POST /v3/mail/batch` creates a batch id, a mail send
may name it (an unknown one is refused) with a `send_at`; `POST /v3/user/scheduled_sends`
cancels or pauses a batch only up to 10 minutes before its send_at, and at most 10 batches
may be cancelled or paused at once (until their send_at passes). Messages of a cancelled
batch are discarded at send_at, even those that arrive after the cancel: `delivered()`
counts what would reach each address. `clock` is the fake's time (tests may move it).

Answers can be programmed: `answer(status, ...)` queues one-off answers (an
`X-RateLimit-Reset` of "+N" means N seconds after the answer), `fail_randomly()`
answers 429/500 part of the time, `action="drop"` processes the request and hangs up without
answering (the sender cannot know), `action="reset"` hangs up without processing.

Pacing: `delay` is how long each mail send takes (per request, however many are in flight);
`rate_limit(limit, window)` answers every mail send with X-RateLimit-Limit/Remaining/Reset
headers for a window of `window` whole seconds, and 429 (Remaining 0) once `limit` requests
arrived in the window. `pacing` records each mail send (arrival, answer, status, remaining,
reset) and `early()` lists requests that arrived after an answer told the sender to wait
until a reset, and before that reset. `peak` is the most mail sends handled at once.

To extend it (suppression endpoints, event webhooks...), register a handler:
`fake.route("GET", "/v3/suppression/unsubscribes", handler)` where `handler(fake, request)`
returns an `Answer`. Run `python -m tests.fake_sendgrid` for a standalone server (the
benchmark does), which prints `PORT <n>` and serves `GET /_fake/stats` (and `POST
/_fake/counts`: messages per address of a JSON list); with `--instant` it
checks the first mail send by SendGrid's rules and then only counts addresses, so the bench
measures the sender rather than the fake.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.counted_server import CountedServer

API_KEY = "SG.fake-test-key"
RESERVED_HEADERS = {
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class Answer:
    status: int = 202
    body: Any = None  # dict (sent as JSON), bytes or None
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "respond"  # respond | drop (process, then hang up) | reset (hang up first)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, list[str]] = field(default_factory=dict)  # parsed query string

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Pace:
    """One mail send as the rate limit saw it."""

    arrived: float
    answered: float
    status: int
    remaining: int | None
    reset: int | None

    @property
    def says_wait(self) -> bool:
        """The answer told the sender to send nothing more before `reset`."""
        return self.reset is not None and (self.status == 429 or self.remaining == 0)


@dataclass
class Delivery:
    """One accepted personalization, substituted as SendGrid would deliver it."""

    email: str
    name: str | None
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    custom_args: dict[str, str]
    categories: list[str]
    send_at: int | None
    batch_id: str | None
    asm: dict | None
    message_id: str


def _error(message: str, field_name: str | None = None) -> dict:
    return {"message": message, "field": field_name, "help": None}


def validate_mail_send(body: Any) -> list[dict]:
    """SendGrid's documented rules for a v3 Mail Send body; [] when it is acceptable."""
    errors: list[dict] = []
    if not isinstance(body, dict):
        return [_error("Bad Request", None)]
    people = body.get("personalizations")
    if not isinstance(people, list) or not people:
        errors.append(_error("You must have at least one personalization.", "personalizations"))
        people = []
    if len(people) > 1000:
        errors.append(_error("The personalization block is limited to 1000 personalizations per "
                             f"API request. You have provided {len(people)} personalizations.",
                             "personalizations"))
    total, seen, substitutions = 0, set(), 0
    base_args = body.get("custom_args") or {}
    for i, person in enumerate(people):
        where = f"personalizations.{i}"
        to = person.get("to")
        if not isinstance(to, list) or not to:
            errors.append(_error("The to parameter is required for all personalization objects.",
                                 f"{where}.to"))
            continue
        for kind in ("to", "cc", "bcc"):
            for rcpt in person.get(kind) or []:
                total += 1
                email = str(rcpt.get("email", ""))
                if not EMAIL.match(email) or len(email) > 320:
                    errors.append(_error("Does not contain a valid address.",
                                         f"{where}.{kind}.email"))
                if email.lower() in seen:
                    errors.append(_error("Each unique email address in the personalizations "
                                         f"array should only be included once. You have "
                                         f"included {email} more than once.", "personalizations"))
                seen.add(email.lower())
                name = rcpt.get("name")
                if name is not None and (";" in name or "," in name):
                    errors.append(_error("The to.name cannot include ';' or ','",
                                         f"{where}.{kind}.name"))
        subs = person.get("substitutions") or {}
        if not all(isinstance(v, str) for v in subs.values()):
            errors.append(_error("The substitution values must be an object of key/value pairs, "
                                 "where the values are all strings.", f"{where}.substitutions"))
        substitutions += len(subs)
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in subs.items())
        if len(subs) > 100 or size > 10_000:
            errors.append(_error("You may not include more than 100 substitutions per "
                                 "personalization object, and the total collective size of your "
                                 "substitutions may not exceed 10,000 bytes per personalization "
                                 "object.", f"{where}.substitutions"))
        errors += _check_headers(person.get("headers"), f"{where}.headers")
        args = {**base_args, **(person.get("custom_args") or {})}
        if not all(isinstance(v, str) for v in args.values()):
            errors.append(_error("All values of custom arguments object must be strings",
                                 f"{where}.custom_args"))
        if len(json.dumps(args).encode()) > 10_000:
            errors.append(_error("The combined size of both global and personalization custom "
                                 "arguments may not exceed 10,000 bytes per personalization.",
                                 f"{where}.custom_args"))
    if total > 1000:
        errors.append(_error("There is a limit of 1000 total recipients (to + cc + bcc) per "
                             "request.", "personalizations"))
    if substitutions > 10_000:
        errors.append(_error("You are limited to 10,000 substitutions.", "personalizations"))
    sender = body.get("from")
    if not isinstance(sender, dict) or not EMAIL.match(str(sender.get("email", ""))):
        errors.append(_error("The from object must be provided for every email send.", "from"))
    elif not str(sender.get("name", "")).isascii():
        errors.append(_error("Unicode encoding is not supported for the from field.", "from"))
    subject = body.get("subject")
    if not isinstance(subject, str) or not subject:
        if not all(p.get("subject") for p in people):
            errors.append(_error("The subject is required.", "subject"))
    content = body.get("content")
    if not isinstance(content, list) or not content:
        errors.append(_error("There must be at least one defined content block.", "content"))
    else:
        types = [c.get("type") for c in content]
        if not all(isinstance(c.get("value"), str) and c["value"] for c in content):
            errors.append(_error("The content value must be a string at least one character in "
                                 "length.", "content.value"))
        if "text/plain" in types and types.index("text/plain") != 0 or (
            "text/html" in types and "text/plain" in types
            and types.index("text/html") < types.index("text/plain")
        ):
            errors.append(_error("text/plain needs to be first, followed by text/html, followed "
                                 "by any other content.", "content"))
    errors += _check_headers(body.get("headers"), "headers")
    categories = body.get("categories")
    if categories is not None:
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            errors.append(_error("Categories must be an array of strings.", "categories"))
        else:
            if len(categories) > 10:
                errors.append(_error("There is a limit of 10 categories for each email that is "
                                     f"sent. You provided {len(categories)} categories.",
                                     "categories"))
            if len(set(categories)) != len(categories):
                errors.append(_error("The categories must be a unique list.", "categories"))
            if any(len(c) > 255 or not c.isascii() for c in categories):
                errors.append(_error("Each category must be ASCII and not longer than 255 "
                                     "characters.", "categories"))
    send_at = body.get("send_at")
    if send_at is not None:
        if not isinstance(send_at, int) or isinstance(send_at, bool):
            errors.append(_error("The send_at parameter is expecting a Unix timestamp as an "
                                 "integer.", "send_at"))
        elif send_at > time.time() + 72 * 3600:
            errors.append(_error("Scheduling more than 72 hours in advance is forbidden.",
                                 "send_at"))
    if "batch_id" in body and not isinstance(body["batch_id"], str):
        errors.append(_error("The batch_id must be a string.", "batch_id"))
    asm = body.get("asm")
    if asm is not None:
        if not isinstance(asm.get("group_id"), int):
            errors.append(_error("The ASM group ID must be an integer.", "asm.group_id"))
        shown = asm.get("groups_to_display")
        if shown is not None and (not isinstance(shown, list) or len(shown) > 25):
            errors.append(_error("There is a limit of 25 unsubscribe groups that can be "
                                 "displayed to a user at a time.", "asm.groups_to_display"))
    return errors


def _check_headers(headers: Any, where: str) -> list[dict]:
    if headers is None:
        return []
    errors = []
    for key, value in headers.items():
        if not isinstance(value, str):
            errors.append(_error("The header values must be strings.", where))
        if not key.isascii() or " " in key:
            errors.append(_error("Header keys cannot contain non-ASCII characters and empty "
                                 "spaces.", where))
        if key.lower() in RESERVED_HEADERS:
            errors.append(_error("Header can not be one of the reserved keys.", where))
    return errors


def _substitute(text: str, subs: dict[str, str]) -> str:
    """One pass, longest key first: a substituted value is never substituted again."""
    if not subs:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True)))
    return pattern.sub(lambda m: subs[m.group(0)], text)


Handler = Callable[["FakeSendGrid", Request], Answer]


class FakeSendGrid:
    """The fake API. Use as a context manager, or start()/stop()."""

    def __init__(self, api_key: str = API_KEY, *, render: bool = True, keep: bool = True,
                 keep_alive: bool = False,
                 scopes: tuple[str, ...] = ("mail.send", "mail.batch.create",
                                            "user.scheduled_sends.create")):
        self.api_key = api_key
        self.scopes = list(scopes)
        self.render = render  # substitute each personalization (tests) or only count (bench)
        self.keep = keep  # keep every Delivery (tests) or only counts (bench)
        self.keep_alive = keep_alive  # HTTP/1.1 persistent connections (the bench's client)
        self.instant = False  # after one request checked in full, only count (the bench)
        self.checked = 0  # mail send requests that passed SendGrid's rules
        self.delay = 0.0  # seconds each mail send takes
        self.sending = 0  # mail sends being handled right now
        self.peak = 0  # the most mail sends handled at once
        self.window: tuple[int, int] | None = None  # rate limit: (requests, seconds)
        self.window_counts: Counter[int] = Counter()  # requests per window (by its reset)
        self.pacing: list[Pace] = []
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, str, int, float]] = []  # method, path, status, when
        self.batches: dict[str, str] = {}  # batch_id -> scheduled status ("", cancel, pause)
        self.batch_send_at: dict[str, int] = {}  # batch_id -> its earliest send_at
        self.by_batch: dict[str | None, Counter[str]] = {}  # accepted addresses per batch
        self.clock: Callable[[], float] = time.time
        self.script: deque[Answer] = deque()
        self.chaos: tuple[random.Random, dict[int, float]] | None = None
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/v3/scopes"): FakeSendGrid._scopes,
            ("POST", "/v3/mail/send"): FakeSendGrid._mail_send,
            ("POST", "/v3/mail/batch"): FakeSendGrid._new_batch,
            ("POST", "/v3/user/scheduled_sends"): FakeSendGrid._scheduled,
            ("GET", "/_fake/stats"): FakeSendGrid._stats,
            ("POST", "/_fake/counts"): FakeSendGrid._counts,
        }
        self.server: CountedServer | None = None

    # -- control --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def answer(self, status: int, body: Any = None, headers: dict | None = None,
               action: str = "respond", times: int = 1) -> None:
        """Queue `times` one-off answers for the next mail send requests."""
        for _ in range(times):
            self.script.append(Answer(status, body, dict(headers or {}), action))

    def fail_randomly(self, rates: dict[int, float], seed: int = 0) -> None:
        """Answer mail sends with these statuses at these rates (e.g. {429: .2, 500: .2})."""
        self.chaos = (random.Random(seed), rates)

    def rate_limit(self, limit: int, window: int = 1) -> None:
        """Allow `limit` mail sends per `window` seconds, with X-RateLimit headers; 429 over it."""
        self.window = (limit, window)

    def early(self, grace: float = 0.2) -> list[tuple[Pace, Pace]]:
        """(answer, request) pairs: a request that arrived more than `grace` seconds after an
        answer told the sender to wait, and before that answer's reset."""
        with self.lock:
            paces = list(self.pacing)
        return [(told, pace) for told in paces if told.says_wait for pace in paces
                if told.answered + grace < pace.arrived < told.reset]

    def recipients(self) -> Counter[str]:
        """How many times each address was accepted."""
        with self.lock:
            return Counter(self.counts)

    def delivered(self) -> Counter[str]:
        """How many messages each address gets once every send_at has come: those of
        cancelled (or still paused) batches are discarded."""
        with self.lock:
            total: Counter[str] = Counter()
            for batch_id, counts in self.by_batch.items():
                if batch_id is None or not self.batches.get(batch_id):
                    total.update(counts)
            return total

    def start(self, port: int = 0) -> FakeSendGrid:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path.split("?")[0],
                                  {k.lower(): v for k, v in self.headers.items()}, body,
                                  parse_qs(urlsplit(self.path).query))
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
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        self.server = CountedServer(("127.0.0.1", port), _Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- dispatch -------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every request the clients sent has been handled: call it once they have
        exited or been killed (a killed client's last request included; CountedServer)."""
        assert self.server is not None
        self.server.wait_settled(timeout)

    def handle(self, request: Request) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            answer = Answer(401, {"errors": [_error("The provided authorization grant is "
                                                    "invalid, expired, or revoked")]})
        else:
            handler = self.routes.get((request.method, request.path))
            answer = handler(self, request) if handler else Answer(404, {"errors": [
                _error("not found")]})
        with self.lock:
            self.requests.append((request.method, request.path, answer.status, time.time()))
        return answer

    def sends(self) -> list[tuple[int, float]]:
        """(status, time) of each mail send request so far."""
        with self.lock:
            return [(r[2], r[3]) for r in self.requests if r[1] == "/v3/mail/send"]

    def _scopes(self, request: Request) -> Answer:
        return Answer(200, {"scopes": self.scopes})

    def _stats(self, request: Request) -> Answer:
        with self.lock:
            counts = self.counts
            return Answer(200, {
                "requests": sum(1 for r in self.requests if r[1] == "/v3/mail/send"),
                "accepted": sum(counts.values()),
                "unique": len(counts),
                "duplicates": sum(n - 1 for n in counts.values() if n > 1),
                "peak": self.peak,
            })

    def _counts(self, request: Request) -> Answer:
        """How many messages each address of a JSON list got (the bench's activity log)."""
        with self.lock:
            return Answer(200, {e: self.counts.get(e.lower(), 0) for e in request.json()})

    def _new_batch(self, request: Request) -> Answer:
        batch_id = uuid.uuid4().hex
        with self.lock:
            self.batches[batch_id] = ""
        return Answer(201, {"batch_id": batch_id})

    def _scheduled(self, request: Request) -> Answer:
        body = request.json() or {}
        batch_id, status = body.get("batch_id"), body.get("status")
        if batch_id not in self.batches or status not in ("cancel", "pause"):
            return Answer(400, {"errors": [_error("invalid batch id or status", "batch_id")]})
        now = self.clock()
        with self.lock:
            send_at = self.batch_send_at.get(batch_id)
            if send_at is not None and now > send_at - 600:
                return Answer(400, {"errors": [_error(
                    "You can only cancel or pause a scheduled send up to 10 minutes before "
                    "its send_at time.", "batch_id")]})
            held = [b for b, st in self.batches.items() if st and b != batch_id
                    and self.batch_send_at.get(b, now + 1) > now]
            if len(held) >= 10:
                return Answer(400, {"errors": [_error(
                    "You can only have 10 different batches with a cancel or pause status at "
                    "a time.", "batch_id")]})
            self.batches[batch_id] = status
        return Answer(201, {"batch_id": batch_id, "status": status})

    def _next_answer(self) -> Answer | None:
        with self.lock:
            if self.script:
                return self.script.popleft()
            if self.chaos:
                rng, rates = self.chaos
                roll = rng.random()
                for status, rate in rates.items():
                    if roll < rate:
                        headers = {}
                        if status == 429:
                            headers["X-RateLimit-Reset"] = str(int(time.time()))
                        return Answer(status, {"errors": [_error(f"chaos {status}")]}, headers)
                    roll -= rate
        return None

    def _mail_send(self, request: Request) -> Answer:
        arrived = time.time()
        with self.lock:
            self.sending += 1
            self.peak = max(self.peak, self.sending)
            remaining = reset = None
            if self.window:
                limit, seconds = self.window
                reset = int(arrived // seconds * seconds + seconds)
                used = self.window_counts[reset]
                self.window_counts[reset] = used + 1
                remaining = max(0, limit - used - 1)
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.window and used >= limit:
                answer = Answer(429, {"errors": [_error("too many requests")]})
            else:
                answer = self._mail_send_now(request)
        finally:
            with self.lock:
                self.sending -= 1
        if self.window:
            answer.headers.update({"X-RateLimit-Limit": str(limit),
                                   "X-RateLimit-Remaining": str(remaining),
                                   "X-RateLimit-Reset": str(reset)})
            with self.lock:
                self.pacing.append(Pace(arrived, time.time(), answer.status, remaining, reset))
        return answer

    def _mail_send_now(self, request: Request) -> Answer:
        scripted = self._next_answer()
        if scripted and scripted.action == "reset":
            return scripted
        if scripted and scripted.status != 202:
            reset = scripted.headers.get("X-RateLimit-Reset", "")
            if reset.startswith("+"):  # seconds from the moment of the answer
                scripted.headers["X-RateLimit-Reset"] = str(int(self.clock() + int(reset)))
            if not scripted.body:
                scripted.body = {"errors": [_error(f"scripted {scripted.status}")]}
            return scripted
        if len(request.body) > 30 * 1024 * 1024:
            return Answer(413, {"errors": [_error("payload too large")]})
        if self.instant and self.checked:  # the bench's instant stand-in: count, answer
            people = orjson.loads(request.body)["personalizations"]
            emails = [rcpt["email"].lower() for person in people for rcpt in person["to"]]
            with self.lock:
                self.counts.update(emails)
            return Answer(202, None, {"X-Message-Id": uuid.uuid4().hex[:22]})
        try:
            body = request.json()
        except ValueError:
            return Answer(400, {"errors": [_error("Invalid JSON")]})
        errors = validate_mail_send(body)
        self.checked += not errors
        batch_id = body.get("batch_id") if isinstance(body, dict) else None
        if batch_id is not None and batch_id not in self.batches:
            errors.append(_error("The batch ID is not valid.", "batch_id"))
        if errors:
            return Answer(400, {"errors": errors})
        message_id = uuid.uuid4().hex[:22]
        self._record(body, message_id)
        answer = Answer(202, None, {"X-Message-Id": message_id})
        if scripted and scripted.action == "drop":
            answer.action = "drop"
        return answer

    def _record(self, body: dict, message_id: str) -> None:
        deliveries = []
        emails = []
        content = {c["type"]: c["value"] for c in body["content"]}
        for person in body["personalizations"]:
            for rcpt in person["to"]:
                emails.append(rcpt["email"].lower())
                if not self.keep:
                    continue
                subs = person.get("substitutions") or {}
                render = _substitute if self.render else (lambda text, _s: text)
                deliveries.append(Delivery(
                    email=rcpt["email"],
                    name=rcpt.get("name"),
                    subject=render(person.get("subject") or body["subject"], subs),
                    text=render(content.get("text/plain", ""), subs),
                    html=render(content.get("text/html", ""), subs),
                    headers={**(body.get("headers") or {}), **(person.get("headers") or {})},
                    custom_args={**(body.get("custom_args") or {}),
                                 **(person.get("custom_args") or {})},
                    categories=list(body.get("categories") or []),
                    send_at=body.get("send_at"),
                    batch_id=body.get("batch_id"),
                    asm=body.get("asm"),
                    message_id=message_id,
                ))
        batch_id, send_at = body.get("batch_id"), body.get("send_at")
        with self.lock:
            self.deliveries += deliveries
            self.counts.update(emails)
            self.by_batch.setdefault(batch_id, Counter()).update(emails)
            if batch_id is not None and send_at is not None:
                known = self.batch_send_at.get(batch_id)
                self.batch_send_at[batch_id] = send_at if known is None else min(known, send_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count-only", action="store_true", help="keep counts, not messages")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each mail send takes")
    parser.add_argument("--keep-alive", action="store_true", help="HTTP/1.1 persistent connections")
    parser.add_argument("--instant", action="store_true",
                        help="check the first mail send in full, then only count addresses")
    args = parser.parse_args()
    fake = FakeSendGrid(render=not args.count_only, keep=not args.count_only,
                        keep_alive=args.keep_alive)
    fake.instant = args.instant
    fake.delay = args.delay
    fake.start(args.port)
    assert fake.server is not None
    print(f"PORT {fake.server.server_address[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
