"""The SendGrid transport: the official `sendgrid` client against the v3 Mail Send API.

One request carries up to 1000 recipients (fewer when the template uses many personal values;
see sendgrid_payload). Answers: 202 accepted; 429 and 5xx retried (429 waits for
X-RateLimit-Reset); 413 splits the batch; 401/403 and other 4xx stop the send with SendGrid's
own message. A request that left but got no answer is `unknown`.

How many requests are in flight adapts to SendGrid's answers (newsletter.providers.pacing),
up to `sendgrid.max_in_flight` in newsletter.yaml (default 8; the environment variable
NEWSLETTER_SENDGRID_IN_FLIGHT overrides it); no request leaves before an X-RateLimit-Reset
that SendGrid asked us to wait for.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
from collections.abc import Sequence
from typing import Any

from newsletter.core.errors import FailedError, NewsletterError
from newsletter.providers.base import BatchResult, Outcome, Transport
from newsletter.providers.mailing import Item, Mailing, Unsendable, on_the_wire
from newsletter.providers.pacing import Pacer
from newsletter.providers.sendgrid.bodies import Bodies
from newsletter.providers.sendgrid.payload import TARGET_REQUEST_BYTES, PayloadBuilder

DEFAULT_TIMEOUT = 60.0


def provider_message(body: bytes | str | None) -> str:
    """SendGrid's error text from a response body ({"errors": [{"message", "field"}]})."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return " ".join(text.split())[:300]
    parts = []
    for error in errors[:5]:
        field = error.get("field")
        message = error.get("message") or ""
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


class _Payload:
    """A request body as JSON (UTF-8 bytes), for the client.

    The client takes a text body (with a Content-Type other than plain "application/json")
    and encodes it, so this hands over the bytes as they are when asked to encode; the client
    then formats the bytes into a debug log line whether or not debug logging is on: a
    megabyte repr per request. Its bytes print short.
    """

    def __init__(self, data: bytes):
        self.data = _Bytes(data)

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.data


class _Bytes(bytes):
    def __format__(self, spec: str) -> str:
        return f"<{len(self):,} bytes>"


def sendgrid_error_body(body: bytes | str | None) -> bool:
    """Whether `body` is SendGrid's own JSON error answer ({"errors": [...]})."""
    if not body:
        return False
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("errors"), list)


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    return getter(name) if getter else None


def _number(headers: Any, name: str) -> int | None:
    value = (_header(headers, name) or "").strip()
    return int(value) if value.isdigit() else None


def rate_limit(headers: Any) -> dict[str, Any]:
    """`remaining` and `reset` (Unix time) from X-RateLimit headers, when SendGrid sent them."""
    reset = _number(headers, "X-RateLimit-Reset")
    return {"remaining": _number(headers, "X-RateLimit-Remaining"),
            "reset": float(reset) if reset is not None else None}


class SendGridTransport(Transport):
    name = "sendgrid"
    parallel = 8  # worker threads; the pacer decides how many requests are in flight

    def __init__(self, api_key: str | None, api_url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 max_batch: int | None = None, max_in_flight: int | None = None):
        if not api_key:
            raise NewsletterError("SENDGRID_API_KEY is not set; "
                                  "create an API key with Mail Send permission in SendGrid")
        from sendgrid import SendGridAPIClient

        self.api = SendGridAPIClient(api_key=api_key, host=api_url).client
        # A second client posts JSON we serialised ourselves (to size the request first): with
        # a Content-Type other than plain "application/json" the client sends text as it is.
        self.raw = SendGridAPIClient(api_key=api_key, host=api_url).client
        self.raw.request_headers["Content-Type"] = "application/json; charset=utf-8"
        self.api_url = api_url
        self.where = api_url
        self.timeout = timeout
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight  # overrides the publication's sendgrid.max_in_flight
        self.pacer = Pacer(max_in_flight or 8)
        self.building = threading.Lock()

    def open(self, mailing: Mailing) -> None:
        super().open(mailing)
        self.builder = PayloadBuilder(mailing)
        self.bodies = Bodies(mailing, self.builder)  # from the second batch on, a child builds
        self.batch_size = min(self.builder.batch_size, self.max_batch or self.builder.batch_size)
        self.parallel = self.max_in_flight or mailing.config.sendgrid.max_in_flight
        self.pacer = Pacer(self.parallel)

    def close(self) -> None:
        bodies = getattr(self, "bodies", None)
        if bodies is not None:
            bodies.close()

    # -- calls ----------------------------------------------------------------------------
    def _call(self, what: str, do) -> Any:
        """Run one API call, turning errors into one clear FailedError."""
        from python_http_client.exceptions import HTTPError

        try:
            return do()
        except HTTPError as exc:
            message = provider_message(exc.body)
            if exc.status_code in (401, 403):
                raise FailedError(f"SendGrid refused the API key ({exc.status_code}) while "
                                  f"{what}: {message or 'check SENDGRID_API_KEY'}") from None
            raise FailedError(f"SendGrid answered {exc.status_code} while {what}: "
                              f"{message or exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FailedError(f"cannot reach SendGrid at {self.api_url} while {what}: "
                              f"{reason}") from None

    def preflight(self) -> None:
        """Check the API key and its Mail Send permission before anything is sent."""
        response = self._call("checking the API key",
                              lambda: self.api.scopes.get(timeout=self.timeout))
        try:
            scopes = set(json.loads(response.body or b"{}").get("scopes") or [])
        except ValueError:
            scopes = set()
        if "mail.send" not in scopes:
            raise FailedError("the SendGrid API key lacks the Mail Send permission (mail.send)")

    def create_batch_id(self) -> str:
        """A new batch id, so a scheduled send can be cancelled."""
        response = self._call("creating a batch id",
                              lambda: self.api.mail.batch.post(timeout=self.timeout))
        return json.loads(response.body)["batch_id"]

    def cancel(self, batch_id: str) -> None:
        """Cancel every message of a scheduled batch."""
        body = {"batch_id": batch_id, "status": "cancel"}
        self._call("cancelling the scheduled send", lambda: self.api.user.scheduled_sends.post(
            request_body=body, timeout=self.timeout))

    # -- sending --------------------------------------------------------------------------
    def send(self, items: Sequence[Item]) -> BatchResult:
        outcomes: dict[int, Outcome] = {}
        wired = []
        for item in items:
            try:
                wired.append(on_the_wire(item))
            except Unsendable as exc:
                outcomes[item.key] = Outcome("failed", error=str(exc))
        # One request is built at a time (the GIL would serialise the work anyway): the first
        # of the workers waiting leaves first, and one batch's pieces are in memory at once.
        with self.building:
            data, rejected = self.bodies.request(wired)
        outcomes.update({key: Outcome("failed", error=reason)
                         for key, reason in rejected.items()})
        ready = [item for item in wired if item.key not in rejected]
        if ready:
            result = self._post(ready, data)
            outcomes.update(zip((i.key for i in ready), result.outcomes, strict=True))
        else:
            result = BatchResult([])
        return BatchResult([outcomes[i.key] for i in items], stop=result.stop, wait=result.wait)

    def _post(self, items: Sequence[Item], data: bytes) -> BatchResult:
        if len(data) > TARGET_REQUEST_BYTES and len(items) > 1:
            return self._split(items)
        from python_http_client.exceptions import HTTPError

        pacer = self.pacer
        if not pacer.gate():  # stopped while waiting for SendGrid's rate-limit reset
            return BatchResult.all(items, Outcome("retry", error="not sent: the send stopped "
                                                  "while waiting for SendGrid's rate limit"))
        started = time.time()
        try:
            response = self.raw.mail.send.post(request_body=_Payload(data), timeout=self.timeout)
        except HTTPError as exc:
            pacer.record(started=started, latency=time.time() - started,
                         limited=exc.status_code == 429, clean=False, **rate_limit(exc.headers))
            return self._refusal(items, exc)
        except urllib.error.URLError as exc:
            # urllib raises URLError while connecting or sending: the request did not arrive.
            return BatchResult.all(items, Outcome("retry", error=f"cannot reach SendGrid: "
                                                                 f"{exc.reason}"))
        except (OSError, http.client.HTTPException) as exc:
            # The request went out; the answer was lost.
            return BatchResult.all(items, Outcome(
                "unknown", error=f"no answer from SendGrid: {exc or type(exc).__name__}"))
        pacer.record(started=started, latency=time.time() - started,
                     **rate_limit(response.headers))
        message_id = _header(response.headers, "X-Message-Id")
        return BatchResult.all(items, Outcome("accepted", provider_id=message_id))

    def _split(self, items: Sequence[Item]) -> BatchResult:
        half = len(items) // 2
        first = self.send(items[:half])
        if first.stop or any(o.state != "accepted" and o.state != "failed"
                             for o in first.outcomes):
            rest = [Outcome("retry", error="not sent: the first half of a split batch failed")]
            return BatchResult(first.outcomes + rest * (len(items) - half),
                               stop=first.stop, wait=first.wait)
        second = self.send(items[half:])
        return BatchResult(first.outcomes + second.outcomes, stop=second.stop, wait=second.wait)

    def _refusal(self, items: Sequence[Item], exc: Any) -> BatchResult:
        status = exc.status_code
        message = provider_message(exc.body)
        if status == 429:
            reset = _header(exc.headers, "X-RateLimit-Reset")
            wait = None
            if reset and reset.strip().isdigit():
                wait = max(0.0, int(reset) - time.time())
            return BatchResult.all(items, Outcome("retry", error="SendGrid answered 429: "
                                                  f"{message or 'too many requests'}"), wait=wait)
        if status in (502, 504) or (status >= 500 and not sendgrid_error_body(exc.body)):
            return BatchResult.all(items, Outcome(
                "unknown", error=f"SendGrid's gateway answered {status}; the request may have "
                                 f"been taken: {message or exc.reason}"))
        if status >= 500:
            return BatchResult.all(items, Outcome("retry", error=f"SendGrid answered {status}: "
                                                                 f"{message or exc.reason}"))
        if status == 413 and len(items) > 1:
            return self._split(items)
        if status in (401, 403):
            reason = (f"SendGrid refused the API key ({status}): "
                      f"{message or 'check SENDGRID_API_KEY'}")
        else:
            reason = f"SendGrid rejected the request ({status}): {message or exc.reason}"
        return BatchResult.all(items, Outcome("retry", error=reason), stop=reason)

    def preview(self, item: Item) -> str:
        body, rejected = self.builder.body([item])
        if rejected:
            return f"(rejected: {rejected[item.key]})"
        return json.dumps(body, indent=2, ensure_ascii=False)
