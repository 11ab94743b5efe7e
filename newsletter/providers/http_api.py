"""What the HTTP-API providers (SendGrid, Postmark, Mailgun) share: the rules that turn what
happened to a request into the ledger's outcomes, and one httpx client (`ApiClient`; SendGrid
keeps its official client and fills the `request` hook with it).

Where the request got to decides what an error means:

- it never arrived whole (no connection, refused, the body not written out): `retry`;
- it was written and the answer was lost (read timeout, connection cut, garbled answer):
  `unknown`, because the provider may have taken it;
- an answer came back: its status, read by `HttpBatchTransport.read`: 2xx is the provider's to
  read; 429 `retry` after the provider's Retry-After / X-RateLimit-Reset; 502 and 504, and any
  5xx whose body is not the provider's own error, `unknown` (a gateway answered; the request
  may have been processed behind it); other 5xx `retry`; 413 splits the batch; 401/403 stop
  the send; other 4xx go to the provider's hook (a recipient it names fails alone), else stop.

`HttpBatchTransport` fills the provider contract's `post` (the pacer's gate, the request, the
pacer told of the answer) and `read` (the rules above); a provider fills in its hooks: `build`
(the request for a batch, and recipients it refuses locally), `read_accepted` (a 2xx answer
into one outcome per item), `read_refusal` (a 4xx naming recipients), `error_text` /
`own_error` (its error bodies), and `request` when its client is not `ApiClient`.
"""

from __future__ import annotations

import email.utils
import json
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from newsletter.core.errors import FailedError
from newsletter.providers.base import BatchResult, Outcome, OutcomeSink, Request, Transport
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.mime import _SPECIALS, display_name
from newsletter.providers.pacing import Pacer

DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0


class NotSent(Exception):
    """The request did not arrive whole: nothing was taken, it may be sent again."""


class Lost(Exception):
    """The request left but no answer came back: the provider may have taken it."""


@dataclass(frozen=True)
class Reply:
    """An answer the provider sent."""

    status: int
    body: bytes
    headers: Any  # httpx.Headers, or any mapping with a case-insensitive `get`
    reason: str = ""  # the status line's words ("Bad Gateway")

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        return json_body(self.body)


def json_body(body: bytes | str | None) -> Any:
    """`body` as JSON, or None when it is not JSON."""
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None


class ApiClient:
    """One provider's HTTP API: a pooled httpx client with its credentials."""

    def __init__(self, provider: str, base_url: str, *, headers: Mapping[str, str] | None = None,
                 auth: tuple[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 connections: int = 8):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.base_url, headers=dict(headers or {}), auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            limits=httpx.Limits(max_connections=connections,
                                max_keepalive_connections=connections),
            follow_redirects=False)

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """Send one request; NotSent or Lost when no answer came back."""
        try:
            response = self.client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                httpx.WriteError, httpx.WriteTimeout, httpx.UnsupportedProtocol) as exc:
            raise NotSent(f"cannot reach {self.provider} at {self.base_url}: "
                          f"{exc or type(exc).__name__}") from None
        except httpx.TransportError as exc:  # read timeout, cut connection, bad answer
            raise Lost(f"no answer from {self.provider}: {exc or type(exc).__name__}") from None
        return Reply(response.status_code, response.content, response.headers,
                     response.reason_phrase)

    def call(self, what: str, method: str, path: str, *, key_hint: str,
             message: Any = None, expected: tuple[int, ...] = (404,), **kwargs: Any) -> Reply:
        """A request outside a send (checks, lists): any trouble is one FailedError.
        `message(body)` gives the provider's error text; 2xx and the `expected` statuses
        come back to the caller."""
        try:
            reply = self.request(method, path, **kwargs)
        except (NotSent, Lost) as exc:
            raise FailedError(f"{exc} while {what}") from None
        if reply.status < 300 or reply.status in expected:
            return reply
        text = (message(reply.body) if message else "") or f"HTTP {reply.status}"
        if reply.status in (401, 403):
            raise FailedError(f"{self.provider} refused the credentials ({reply.status}) while "
                              f"{what}: {text}; check {key_hint}")
        raise FailedError(f"{self.provider} answered {reply.status} while {what}: {text}")

    def close(self) -> None:
        self.client.close()


def _seconds(value: str | None, now: float) -> float | None:
    """A Retry-After value (seconds, or an HTTP date) as seconds from `now`."""
    value = (value or "").strip()
    if not value:
        return None
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - now if when.tzinfo else None


def reset_time(headers: Any, now: float) -> float | None:
    """When the provider's rate limit resets (a Unix time): Retry-After, else
    X-RateLimit-Reset (Unix seconds, or milliseconds as some APIs send)."""
    after = _seconds(headers.get("Retry-After"), now)
    if after is not None:
        return now + max(0.0, after)
    raw = (headers.get("X-RateLimit-Reset") or "").strip()
    if not raw.replace(".", "", 1).isdigit():
        return None
    value = float(raw)
    if value > 1e11:  # milliseconds since the epoch
        value /= 1000
    elif value < 1e9:  # seconds from now
        value += now
    return value


def remaining(headers: Any) -> int | None:
    value = (headers.get("X-RateLimit-Remaining") or "").strip()
    return int(value) if value.isdigit() else None


def short(text: str, limit: int = 300) -> str:
    """Provider words on one line, at most `limit` characters."""
    return " ".join(text.split())[:limit]


class HttpBatchTransport(Transport):
    """A batch API over HTTP: one request per batch under a pacer, the answer read into one
    outcome per item (see the module docstring for the rules). A provider fills `build`,
    `read_accepted`, `read_refusal`, `error_text` and `own_error`; one whose client is not
    `ApiClient` (SendGrid's official client) fills `request` too."""

    label = ""  # the provider's name in messages ("Postmark")
    key_hint = ""  # the environment variable holding its credentials
    credentials = "the credentials"  # what a 401/403 refused, in words
    #: requests stay below this many bytes (split in two otherwise)
    max_request_bytes: int | None = 20 * 1024 * 1024
    api: ApiClient

    def __init__(self, where: str, *, max_batch: int, max_in_flight: int):
        self.where = where
        self.max_batch = max_batch
        self.parallel = max(1, max_in_flight)
        self.pacer = Pacer(self.parallel)

    def open(self, mailing: Mailing) -> None:
        super().open(mailing)
        self.pacer = Pacer(self.parallel)  # a fresh limit for each mailing

    # -- hooks ----------------------------------------------------------------------------
    @abstractmethod
    def build(self, items: Sequence[Item]) -> Request:
        """The request for `items`: `body` holds httpx request arguments (method, path,
        content...) for `request`, `size` the content's length."""

    def request(self, body: Any) -> Reply:
        """Send one built request; NotSent or Lost when no answer came back."""
        return self.api.request(**body)

    @abstractmethod
    def read_accepted(self, items: Sequence[Item], reply: Reply) -> BatchResult:
        """A 2xx answer: one outcome per item."""

    def read_refusal(self, items: Sequence[Item], reply: Reply) -> BatchResult | None:
        """A 4xx (not 401/403/413/429) that concerns some recipients only, or None."""
        return None

    @abstractmethod
    def error_text(self, body: bytes) -> str:
        """The provider's words from an error body."""

    @abstractmethod
    def own_error(self, body: bytes) -> bool:
        """Whether `body` is the provider's own error answer (not a gateway's page)."""

    # -- the fixed steps ------------------------------------------------------------------
    def post(self, items: Sequence[Item], request: Request,
             tell: OutcomeSink | None = None) -> Reply | BatchResult:
        """The provider's reply, or the outcomes when none came (not sent, or lost)."""
        if not self.pacer.gate():  # stopped while waiting for the provider's reset
            return BatchResult.all(items, Outcome("retry", error=f"not sent: the send stopped "
                                                  f"while waiting for {self.label}'s rate limit"))
        started = time.time()
        try:
            reply = self.request(request.body)
        except NotSent as exc:
            return BatchResult.all(items, Outcome("retry", error=str(exc)))
        except Lost as exc:
            return BatchResult.all(items, Outcome("unknown", error=str(exc)))
        now = time.time()
        self.pacer.record(started=started, latency=now - started, limited=reply.status == 429,
                          clean=reply.status < 300, remaining=remaining(reply.headers),
                          reset=reset_time(reply.headers, now))
        return reply

    def read(self, items: Sequence[Item], answer: Reply | BatchResult) -> BatchResult:
        if isinstance(answer, BatchResult):
            return answer
        reply = answer
        status, label = reply.status, self.label
        if 200 <= status < 300:
            return self.read_accepted(items, reply)
        message = self.error_text(reply.body)
        if status == 429:
            reset = reset_time(reply.headers, time.time())
            wait = max(0.0, reset - time.time()) if reset is not None else None
            return BatchResult.all(items, Outcome("retry", error=f"{label} answered 429: "
                                                  f"{message or 'too many requests'}"), wait=wait)
        said = message or reply.reason
        if status in (502, 504) or (status >= 500 and not self.own_error(reply.body)):
            return BatchResult.all(items, Outcome(
                "unknown", error=f"{label}'s gateway answered {status}; the request may have "
                                 f"been taken: {said or 'no details'}"))
        if status >= 500:
            return BatchResult.all(items, Outcome("retry", error=f"{label} answered {status}: "
                                                               f"{said or 'server error'}"))
        if status == 413 and len(items) > 1:
            return self.split(items)
        if status in (401, 403):
            reason = (f"{label} refused {self.credentials} ({status}): "
                      f"{message or 'check ' + self.key_hint}")
            return BatchResult.all(items, Outcome("retry", error=reason), stop=reason)
        found = self.read_refusal(items, reply)
        if found is not None:
            return found
        reason = f"{label} rejected the request ({status}): {said or 'no details'}"
        return BatchResult.all(items, Outcome("retry", error=reason), stop=reason)

    def close(self) -> None:
        self.api.close()


def address(name: str, email: str) -> str:
    """`Name <email>` for an API's address field: the name cleaned for a header (mime's
    rules), quoted when it holds RFC 5322 specials; the bare address without a name."""
    clean = display_name(name)
    if not clean:
        return email
    if _SPECIALS.search(clean):
        clean = '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{clean} <{email}>"
